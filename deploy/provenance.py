"""What produced a run folder: versions, the command line and the resolved config (``run.json``).

Written by ``gradgroup train`` and ``gradgroup pipeline`` into their output folders, atomically,
each time a command runs there. Its ``config`` is the command's settings by config field name, so
``gradgroup train --config OUT/run.json`` repeats the run. Torch-free: versions are read from
modules already imported, else from the installed distributions, never by importing them.
"""

from __future__ import annotations

import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .fileio import to_json, write_text_atomic

RUN_FILE = "run.json"
# Import name -> distribution names to ask for when the module is not imported yet (TI's
# onnxruntime build installs under its own name).
PACKAGES = {
    "gradgroup": ("gradgroup",),
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-tidl", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "numpy": ("numpy",),
}


def package_version(module: str) -> str | None:
    """Version of ``module``: its ``__version__`` when imported, else its distribution's; None
    when it is not installed."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, "__version__", None) if loaded is not None else None
    if isinstance(found, str):
        return found
    for dist in PACKAGES.get(module, (module,)):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str | None]:
    """gradgroup, torch, onnxruntime, onnx, numpy (None: not installed) and python."""
    found: dict[str, str | None] = {name: package_version(name) for name in PACKAGES}
    found["python"] = platform.python_version()
    return found


def run_record(config: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """The record of one command: when, where, the command line, versions and the config."""
    return {
        "command": list(sys.argv if argv is None else argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": versions(),
        "config": config,
    }


def write_run_record(folder: str | Path, config: dict[str, Any]) -> Path:
    """Write ``folder/run.json`` atomically (the latest command that ran in ``folder``)."""
    path = Path(folder) / RUN_FILE
    return write_text_atomic(path, to_json(run_record(config), indent=2, default=str) + "\n")


def is_run_record(data: Any) -> bool:
    """Whether ``data`` (a parsed JSON/YAML file) is a ``run.json`` rather than a plain config."""
    return isinstance(data, dict) and {"command", "versions", "config"} <= set(data)
