"""Class tables: names, colours and label-id mappings shared by every stage.

The default is Cityscapes' 19 training classes (trainIds 0..18, ignore 255), which the
procedural street scenes also use, so a model trained on either reads the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

IGNORE_INDEX = 255

# (name, Cityscapes labelId, RGB colour) for the 19 training classes, in trainId order.
_CITYSCAPES = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB palette of the classes a model predicts, index = class id."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise InputError(
                f"class table has {len(self.names)} names but {len(self.palette)} colours; "
                "give one colour per class"
            )
        if not 1 <= len(self.names) <= 255:
            raise InputError(f"class table has {len(self.names)} classes; 1..255 are supported")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette_array(self) -> np.ndarray:
        """Palette as a (256, 3) uint8 RGB lookup table; ids past the table (ignore) are black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return lut

    def to_dict(self) -> dict:
        return {"names": list(self.names), "palette": [list(c) for c in self.palette]}

    @classmethod
    def from_dict(cls, data: dict) -> ClassTable:
        try:
            names = tuple(str(n) for n in data["names"])
            palette = tuple(tuple(int(v) for v in c) for c in data["palette"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"class table is malformed ({exc}); "
                "expected {'names': [...], 'palette': [[r,g,b], ...]}"
            ) from None
        if any(len(c) != 3 for c in palette):
            raise InputError("class table palette entries must be [r, g, b] triples")
        return cls(names, palette)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> ClassTable:
        """Read a class table from JSON ``{"names": [...], "palette": [[r,g,b], ...]}``."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"class table {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"class table {path} is not readable JSON ({exc})") from None
        return cls.from_dict(data)


CITYSCAPES = ClassTable(
    names=tuple(n for n, _, _ in _CITYSCAPES), palette=tuple(c for _, _, c in _CITYSCAPES)
)


def cityscapes_label_lut() -> np.ndarray:
    """(256,) uint8 table mapping Cityscapes labelIds to trainIds; everything else to 255."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for train_id, (_, label_id, _) in enumerate(_CITYSCAPES):
        lut[label_id] = train_id
    return lut


def cityscapes_train_to_label_lut() -> np.ndarray:
    """(256,) uint8 table mapping trainIds to Cityscapes labelIds; the inverse of
    :func:`cityscapes_label_lut`, everything else (ignore) to 0, Cityscapes' "unlabeled"."""
    lut = np.zeros(256, np.uint8)
    for train_id, (_, label_id, _) in enumerate(_CITYSCAPES):
        lut[train_id] = label_id
    return lut


def colorize(class_map: np.ndarray, table: ClassTable = CITYSCAPES) -> np.ndarray:
    """Map an (H, W) class-id array to an (H, W, 3) uint8 RGB image."""
    ids = class_map.astype(np.uint8, copy=False)
    # cv2.LUT on a 3-channel view is ~10x faster than numpy fancy indexing at 512x1024.
    return cv2.LUT(cv2.merge([ids, ids, ids]), table.palette_array().reshape(256, 1, 3))
