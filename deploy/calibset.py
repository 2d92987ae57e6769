"""The 8-bit calibration set: frames at the model's input size, as deploy would resize them.

One ``.npz`` file holds ``images`` (N, H, W, 3) uint8 RGB, ``names`` (N,) source names, and
``preprocess`` (JSON of :class:`~gradgroup.deploy.preprocess.Preprocess`). Frames are stored
before normalization, so the same set serves float and uint8-input models, ORT and TIDL.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .fileio import atomic_path, to_json
from .preprocess import Preprocess, normalize, to_layout


@dataclass(frozen=True)
class CalibSet:
    """Calibration frames and how they were prepared."""

    images: np.ndarray  # (N, H, W, 3) uint8 RGB at the model's input size
    names: tuple[str, ...]
    preprocess: Preprocess

    def __len__(self) -> int:
        return len(self.images)

    def model_input(self, index: int, input_dtype: str = "float32") -> np.ndarray:
        """Frame ``index`` as a (1, ...) model input: normalized float32 or raw uint8."""
        rgb = self.images[index]
        if input_dtype == "uint8":
            return to_layout(rgb, self.preprocess)
        return normalize(rgb, self.preprocess)


def save_calibset(path: str | Path, images: np.ndarray, names: list[str], spec: Preprocess) -> Path:
    """Write a calibration set atomically (temp file + rename); returns the path."""
    path = Path(path)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(
            f"calibration images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}"
        )
    if images.shape[1:3] != spec.size:
        raise InputError(
            f"calibration images are {images.shape[1:3]}, preprocessing says {spec.size}"
        )
    if len(names) != len(images):
        raise InputError(f"{len(names)} names for {len(images)} calibration images")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            images=images,
            names=np.asarray(names, dtype=str),
            preprocess=np.asarray(to_json(asdict(spec))),
        )
    return path


def load_calibset(path: str | Path) -> CalibSet:
    """Read a calibration set written by :func:`save_calibset`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"calibration set {path} is a folder; give the .npz file gradgroup export writes "
            "beside the model (<model>.calib.npz)"
        )
    if not path.is_file():
        raise InputError(f"calibration set {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"]
            names = tuple(str(n) for n in data["names"])
            pre = json.loads(str(data["preprocess"]))
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise InputError(
            f"calibration set {path} is not readable ({exc}); re-run gradgroup export"
        ) from None
    spec = Preprocess.from_dict(pre)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or not len(images):
        raise InputError(
            f"calibration set {path} holds {images.shape} {images.dtype}, "
            "expected (N, H, W, 3) uint8"
        )
    return CalibSet(images, names, spec)
