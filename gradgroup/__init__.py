"""gradgroup: gradual grouping for efficient semantic segmentation, from training to TI SoCs.

Stages install as subpackages: ``gradgroup.train``, ``gradgroup.export``, ``gradgroup.calib`` and
``gradgroup.deploy`` (the torch-free board runtime). This package itself holds the CLI and, for
embedding, the runtime's two names: ``from gradgroup import Segmenter, Prediction``.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("gradgroup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# Imported on first use: the CLI imports this package and must not pay for onnxruntime.
_LAZY = {
    "Segmenter": "gradgroup.deploy.runtime",
    "Prediction": "gradgroup.deploy.prediction",
}
__all__ = ["Prediction", "Segmenter", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradgroup' has no attribute {name!r}")
