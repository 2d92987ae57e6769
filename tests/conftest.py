"""Shared test settings: small thread counts so the suite behaves on 2 shared cores."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the board-side tests run without torch
    pass
