"""Shared test settings: small thread counts so the suite behaves on 2 shared cores."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the board-side tests run without torch
    pass


import pytest  # noqa: E402
from onnx_fixtures import export_tiny_onnx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Path of a tiny fp32 dg4-light ONNX model (logits output, float NCHW input, metadata)."""
    pytest.importorskip("torch")
    return export_tiny_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
