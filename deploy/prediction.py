"""One segmented image as a value: its class map, the model's classes, and the PNG formats.

:class:`Prediction` is what ``Segmenter.predict`` yields and what ``gradgroup predict`` writes.
The formats (:data:`FORMATS`):

- ``trainid``: single-channel PNG of the class ids the model predicts (Cityscapes trainIds 0..18).
- ``labelid``: single-channel PNG of regular Cityscapes label ids (7 road, 26 car, ...), what
  cityscapesScripts' evaluation and the benchmark server read (Cityscapes-class models only).
- ``color``: indexed (palette) PNG whose pixel values are the class ids and whose palette is the
  model's own colours: viewers and OpenCV show colours, PIL's ``Image.open`` gives the ids.
- ``overlay``: the class colours blended over the input (RGB PNG).
"""

from __future__ import annotations

import difflib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from .classes import CITYSCAPES, ClassTable, cityscapes_train_to_label_lut, colorize
from .errors import InputError, RunError
from .fileio import atomic_path
from .sources import IMAGE_EXTENSIONS

FORMATS = ("trainid", "labelid", "color", "overlay")


@dataclass
class Prediction:
    """One segmented input image.

    Attributes:
        name: the input's name (``city/x.png`` in a folder, ``frame_000012`` in a video).
        class_map: (H, W) uint8 class ids at the input's size.
        classes: the model's class names and palette (index = class id).
        image: the (H, W, 3) uint8 BGR input (needed by ``overlay``).
        timings: per-stage milliseconds (preprocess, inference, postprocess).
    """

    name: str
    class_map: np.ndarray
    classes: ClassTable = CITYSCAPES
    image: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes.names

    def colorize(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the class colours."""
        return colorize(self.class_map, self.classes)

    def label_ids(self) -> np.ndarray:
        """(H, W) uint8 regular Cityscapes label ids; InputError for a model of other classes."""
        check_cityscapes(self.classes, "this prediction")
        return cityscapes_train_to_label_lut()[self.class_map]

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        """(H, W, 3) uint8 BGR input with the class colours blended over it."""
        from .view import overlay

        if self.image is None:
            raise InputError(f"prediction {self.name} holds no input image to overlay")
        return overlay(self.image, self.class_map, self.classes, opacity)

    def encode(self, format: str = "color", opacity: float = 0.5) -> bytes:
        """PNG bytes of the prediction in one of :data:`FORMATS`."""
        check_formats([format])
        if format == "color":
            return _palette_png(self.class_map, self.classes.palette_array())
        if format == "labelid":
            image = self.label_ids()
        elif format == "overlay":
            image = self.overlay(opacity)
        else:
            image = self.class_map
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise RunError(f"OpenCV cannot encode {self.name} as PNG")
        return buf.tobytes()

    def save(self, path: str | Path, format: str = "color", opacity: float = 0.5) -> Path:
        """Write the prediction as a PNG, atomically (its folders are created); returns the path."""
        data = self.encode(format, opacity)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        """Name, size, the classes present with their pixel shares, and the timings."""
        from .view import classes_present

        present = classes_present(self.class_map, self.classes.num_classes)
        return {
            "name": self.name,
            "height": int(self.class_map.shape[0]),
            "width": int(self.class_map.shape[1]),
            "classes": [
                {"id": i, "name": self.classes.names[i], "share": round(s, 4)} for i, s in present
            ],
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def check_formats(formats: Any) -> tuple[str, ...]:
    """The formats, validated and without repeats; InputError names an unknown one."""
    out: list[str] = []
    for fmt in formats:
        if fmt not in FORMATS:
            close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"format {fmt!r} is not one of {', '.join(FORMATS)}{hint}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise InputError(f"no output format given; pick from {', '.join(FORMATS)}")
    return tuple(out)


def check_cityscapes(classes: ClassTable, what: str) -> None:
    """Refuse ``labelid`` for a model whose classes are not Cityscapes' 19 training classes."""
    if classes.names != CITYSCAPES.names:
        raise InputError(
            f"format 'labelid' needs a model of the 19 Cityscapes classes; {what} predicts "
            f"{classes.num_classes} others ({', '.join(classes.names[:3])}, ...); use 'trainid'"
        )


def output_path(out: str | Path, name: str, format: str) -> Path:
    """Where an input's PNG in ``format`` goes: ``out/format/name`` with a ``.png`` suffix."""
    rel = PurePosixPath(name)
    if rel.suffix.lower() in IMAGE_EXTENSIONS:
        rel = rel.with_suffix("")
    return Path(out, format, *rel.parent.parts, rel.name + ".png")


def _palette_png(ids: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit indexed PNG: ``ids`` as the pixel indices, ``palette`` (256, 3) RGB as PLTE.

    OpenCV cannot write palette PNGs and Pillow is not a board dependency; the format is four
    chunks.
    """

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    h, w = ids.shape
    rows = np.zeros((h, w + 1), np.uint8)  # each row starts with filter type 0 (none)
    rows[:, 1:] = ids
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (indexed)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"PLTE", np.ascontiguousarray(palette, np.uint8).tobytes()),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            chunk(b"IEND", b""),
        )
    )
