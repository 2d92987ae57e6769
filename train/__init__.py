"""Training stage: the model zoo, gradual grouping and the trainer (PyTorch).

Public API (imported from the modules, so ``import gradgroup.train`` stays light):

- :func:`gradgroup.train.models.create_model` and the zoo names (``gradgroup models``);
- :class:`~gradgroup.train.grouping.GradualGroupConv2d`, ``set_alpha``, ``convert_to_grouped``;
- :func:`gradgroup.train.trainer.train` with :class:`~gradgroup.train.recipe.TrainConfig`;
- checkpoints: :mod:`gradgroup.train.checkpoint` (``load_checkpoint``, ``init_from``);
- the shipped scene-pretrained weights: :mod:`gradgroup.train.weights`.
"""

import os

# PyTorch's OpenMP threads spin while they wait. When another process busies a core, a spinning
# thread holds it from the thread doing the work: measured 9.6 s a frame instead of 0.13 s for
# dg4-light at 128x256 on 2 cores under load. Passive waiting removes that (bench/NOTES.md).
# It only takes effect before torch is imported, and a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
