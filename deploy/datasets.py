"""Labelled datasets for training and evaluation: procedural scenes, Cityscapes, folder pairs.

``open_dataset(spec)`` picks one by a short spec string:

- ``synthetic`` — procedural street scenes (:mod:`.scenes`), rendered on the fly, deterministic by
  seed. Train seeds are ``0..length-1``; val seeds start at ``10_000_000`` so the splits never meet.
- ``cityscapes:DIR`` — Cityscapes as distributed::

      DIR/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
      DIR/gtFine/<split>/<city>/<name>_gtFine_labelIds.png

  label ids are mapped to the 19 train ids on the fly (everything else -> 255, ignore).
- ``folder:DIR`` — your own image/mask pairs::

      DIR/classes.json            {"names": [...], "palette": [[r, g, b], ...]}
      DIR/train/images/<stem>.png|.jpg     DIR/train/masks/<stem>.png
      DIR/val/images/<stem>.png|.jpg       DIR/val/masks/<stem>.png

  Masks are single-channel uint8 PNGs of class ids (0..N-1, 255 = ignore). Without ``train/`` and
  ``val/`` sub-folders, ``DIR/images`` + ``DIR/masks`` is one set used for both splits (with a
  warning: your validation numbers then measure training data). Without ``classes.json`` the
  Cityscapes table is assumed (with a warning).

Checkpoints and model metadata record the spec a model was trained on (:func:`absolute_spec`);
``model`` (:data:`MODEL_DATA`), the default of every command's data option, resolves to it
(:func:`resolve_data`): calibration reads its train split, evaluation its val split.

Datasets are for training and evaluation, so a corrupt file stops the run with an
:class:`~.errors.InputError` naming it rather than being skipped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .classes import CITYSCAPES, IGNORE_INDEX, ClassTable, cityscapes_label_lut
from .errors import InputError

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
VAL_SEED_OFFSET = 10_000_000
DEFAULT_SYNTHETIC_SIZE = (256, 512)
DEFAULT_SYNTHETIC_LENGTH = {"train": 2000, "val": 200}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MODEL_DATA = "model"  # a config default: the data the model was trained on (resolve_data)


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8 train ids, 255 = ignore
    name: str


class LabelledDataset(Protocol):
    """What every dataset offers: a class table, a length and indexed samples."""

    classes: ClassTable

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def _check_index(index: int, length: int) -> int:
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"sample {index} out of range for a dataset of {length}")
    return index


class SyntheticDataset:
    """Procedural street scenes, one per seed, rendered on access."""

    classes = CITYSCAPES

    def __init__(self, split: str, size: tuple[int, int], length: int) -> None:
        self.split = split
        self.size = size
        self.length = length
        self.seed_offset = VAL_SEED_OFFSET if split == "val" else 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        from .scenes import render_scene  # the generator is only needed when used

        seed = self.seed_offset + _check_index(index, self.length)
        rgb, labels = render_scene(seed, self.size)
        return Sample(rgb, labels, f"scene_{seed:08d}")


def _read_image(path: Path) -> np.ndarray:
    """Read a colour image as RGB; a file OpenCV cannot decode is an InputError naming it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"image {path} cannot be read (corrupt or not an image); fix or remove it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a single-channel uint8 label image and check it matches its image's size."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError(f"mask {path} cannot be read (corrupt or not an image); fix or remove it")
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise InputError(
            f"mask {path} is {mask.dtype} with shape {mask.shape}; "
            "expected a single-channel uint8 PNG of class ids"
        )
    if mask.shape != shape:
        raise InputError(f"mask {path} is {mask.shape[::-1]} (WxH) but its image is {shape[::-1]}")
    return mask


class CityscapesDataset:
    """Cityscapes fine annotations, label ids mapped to the 19 train ids."""

    classes = CITYSCAPES

    def __init__(self, root: Path, split: str, length: int | None) -> None:
        image_dir = root / "leftImg8bit" / split
        label_dir = root / "gtFine" / split
        expected = (
            f"expected {root}/leftImg8bit/{split}/<city>/*_leftImg8bit.png and "
            f"{root}/gtFine/{split}/<city>/*_gtFine_labelIds.png"
        )
        if not image_dir.is_dir():
            raise InputError(f"Cityscapes folder {image_dir} does not exist; {expected}")
        if not label_dir.is_dir():
            raise InputError(f"Cityscapes folder {label_dir} does not exist; {expected}")
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise InputError(f"no *_leftImg8bit.png images under {image_dir}; {expected}")
        if length is not None:
            images = images[:length]
        self.pairs: list[tuple[Path, Path]] = []
        for image in images:
            stem = image.name[: -len("_leftImg8bit.png")]
            label = label_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.is_file():
                raise InputError(f"label file {label} for image {image} does not exist; {expected}")
            self.pairs.append((image, label))
        self.lut = cityscapes_label_lut()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, label_path = self.pairs[_check_index(index, len(self.pairs))]
        rgb = _read_image(image_path)
        labels = self.lut[_read_mask(label_path, rgb.shape[:2])]
        return Sample(rgb, labels, image_path.name[: -len("_leftImg8bit.png")])


class FolderDataset:
    """Image/mask pairs in ``images/`` and ``masks/`` with a ``classes.json`` table."""

    def __init__(self, root: Path, split: str, length: int | None) -> None:
        layout = f"expected {root}/[train|val/]images/<stem>.png|jpg and .../masks/<stem>.png"
        if not root.is_dir():
            raise InputError(f"dataset folder {root} does not exist; {layout}")
        base = root / split
        if not (base / "images").is_dir():
            if not (root / "images").is_dir():
                raise InputError(f"no images/ folder in {base} or {root}; {layout}")
            log.warning(
                "%s has no %s/ folder; using %s/images for both train and val", root, split, root
            )
            base = root
        if not (base / "masks").is_dir():
            raise InputError(f"mask folder {base / 'masks'} does not exist; {layout}")
        table = root / "classes.json"
        if table.is_file():
            self.classes = ClassTable.load(table)
        else:
            log.warning("%s not found; assuming the 19 Cityscapes classes", table)
            self.classes = CITYSCAPES
        images = sorted(
            p for p in (base / "images").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            raise InputError(f"no .png/.jpg images in {base / 'images'}; {layout}")
        if length is not None:
            images = images[:length]
        self.pairs: list[tuple[Path, Path]] = []
        for image in images:
            mask = base / "masks" / f"{image.stem}.png"
            if not mask.is_file():
                raise InputError(f"mask {mask} for image {image} does not exist; {layout}")
            self.pairs.append((image, mask))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[_check_index(index, len(self.pairs))]
        rgb = _read_image(image_path)
        labels = _read_mask(mask_path, rgb.shape[:2])
        n = self.classes.num_classes
        bad = (labels >= n) & (labels != IGNORE_INDEX)
        if bad.any():
            raise InputError(
                f"mask {mask_path} holds class id {int(labels[bad].max())} but the class table "
                f"has {n} classes (ids 0..{n - 1}, 255 = ignore)"
            )
        return Sample(rgb, labels, image_path.stem)


def absolute_spec(spec: str) -> str:
    """``spec`` with its folder made absolute (``~`` expanded): what a checkpoint records, so the
    spec names the same data from any working directory."""
    kind, _, path = spec.partition(":")
    return f"{kind}:{Path(path).expanduser().resolve()}" if path else spec


def resolve_data(spec: str, trained_on: str | None, flag: str = "--data") -> str:
    """The dataset ``spec`` names: itself, or for :data:`MODEL_DATA` the data the model was trained
    on (``trained_on``, from its checkpoint or metadata; ``synthetic`` where the model does not
    record it, as models written before it was recorded).

    Raises:
        InputError: ``spec`` is ``model`` and the model's data folder is not on this machine.
    """
    if spec != MODEL_DATA:
        return spec
    if not trained_on:
        return "synthetic"
    _, _, path = trained_on.partition(":")
    if path and not Path(path).expanduser().exists():
        raise InputError(
            f"the model was trained on {trained_on}, which is not on this machine; "
            f"choose the data with {flag}"
        )
    return trained_on


def check_classes(data: LabelledDataset, classes: ClassTable, spec: str, model: str) -> None:
    """Refuse evaluating ``model`` (predicting ``classes``) on data with another class table."""
    if data.classes.num_classes != classes.num_classes:
        raise InputError(
            f"{spec} has {data.classes.num_classes} classes but {model} predicts "
            f"{classes.num_classes}; evaluate on data with the model's class table"
        )


def open_dataset(
    spec: str,
    split: str = "train",
    size: tuple[int, int] | None = None,
    length: int | None = None,
) -> LabelledDataset:
    """Open a labelled dataset.

    Args:
        spec: ``"synthetic"``, ``"cityscapes:DIR"`` or ``"folder:DIR"``.
        split: ``"train"`` or ``"val"``.
        size: (H, W) render size for ``synthetic`` (default 256x512); Cityscapes and folders are
            delivered at their native resolution.
        length: number of synthetic scenes (default 2000 train / 200 val), or a cap on the number
            of files for Cityscapes and folders.

    Returns:
        A dataset with ``classes``, ``len()`` and ``[i] -> Sample``.

    Raises:
        InputError: unknown spec or split, missing or misnamed folders.
    """
    if split not in SPLITS:
        raise InputError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if length is not None and length <= 0:
        raise InputError(f"dataset length {length} must be positive")
    kind, _, path = spec.partition(":")
    if kind == "synthetic" and not path:
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise InputError(f"synthetic size {size} must be a positive (H, W)")
        return SyntheticDataset(
            split, tuple(size or DEFAULT_SYNTHETIC_SIZE), length or DEFAULT_SYNTHETIC_LENGTH[split]
        )
    if kind == "cityscapes" and path:
        return CityscapesDataset(Path(path).expanduser(), split, length)
    if kind == "folder" and path:
        return FolderDataset(Path(path).expanduser(), split, length)
    raise InputError(
        f"dataset {spec!r} is not understood; use 'synthetic', 'cityscapes:DIR' or 'folder:DIR'"
    )
