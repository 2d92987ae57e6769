"""gradgroup: gradual grouping for efficient semantic segmentation, from training to TI SoCs.

Stages install as subpackages: ``gradgroup.train``, ``gradgroup.export``, ``gradgroup.calib`` and
``gradgroup.deploy`` (the torch-free board runtime). This package itself holds only the CLI.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gradgroup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
