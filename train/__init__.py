"""Training stage: the model zoo, gradual grouping and the trainer (PyTorch).

Public API (imported from the modules, so ``import gradgroup.train`` stays light):

- :func:`gradgroup.train.models.create_model` and the zoo names (``gradgroup models``);
- :class:`~gradgroup.train.grouping.GradualGroupConv2d`, ``set_alpha``, ``convert_to_grouped``;
- :func:`gradgroup.train.trainer.train` with :class:`~gradgroup.train.recipe.TrainConfig`;
- checkpoints: :mod:`gradgroup.train.checkpoint` (``load_checkpoint``, ``init_from``);
- the shipped scene-pretrained weights: :mod:`gradgroup.train.weights`.
"""

import os

# PyTorch's OpenMP threads spin while they wait (300,000 spins by default). When another process
# busies a core, a spinning thread holds it from the thread doing the work: measured 9.6 s a frame
# instead of 0.13 s for dg4-light at 128x256 on 2 cores under load. Waiting passively instead
# costs 4x on a quiet 2-core VM (waking a sleeping thread is slow there: grouped dg4-light trains
# at 3.5 img/s on 2 passive threads, 15.8 with a short spin). A short spin keeps the quiet speed;
# the trainer's CoreShare drops to one thread while another process holds a core
# (bench/TRAINING.md, section 6). Read when torch loads; a user's own OpenMP settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
