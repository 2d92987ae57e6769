"""The 8-bit calibration set the exporter writes next to the model.

``--calib-data`` picks where the frames come from, in the one frame grammar of
:func:`gradgroup.deploy.sources.parse_frame_spec` (what demo and bench read), plus the labelled
datasets ``--data`` takes:

- ``synthetic``: procedural street scenes (deploy's synthetic frame source);
- ``images:DIR`` (or a bare folder): a folder of images, in name order;
- ``video:FILE`` (or a bare file): the first frames of a video file;
- ``camera:N``, a URL or a GStreamer pipeline: the first frames of a live source;
- ``cityscapes:DIR``: Cityscapes ``leftImg8bit/train`` images (through deploy's dataset reader,
  which also expects the ``gtFine`` labels beside them);
- ``folder:DIR``: the train images of a ``folder:DIR`` dataset (as ``--data`` takes it).

:class:`~gradgroup.export.onnx_export.ExportConfig` defaults to ``model``: the data the checkpoint
was trained on, which is one of ``synthetic``, ``cityscapes:DIR`` and ``folder:DIR``.

Frames are resized exactly as deploy resizes them
(:func:`~gradgroup.deploy.preprocess.resize_frame`) and stored as uint8 RGB at the model's input
size in ``<stem>.calib.npz`` (:mod:`gradgroup.deploy.calibset` format), with their source names
and the preprocessing.
Unreadable frames are skipped and reported by name; too few usable frames is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess, resize_frame

log = logging.getLogger(__name__)

DATASETS = ("cityscapes", "folder")  # labelled datasets: their train split is read
MIN_FRACTION = 0.5  # fewer usable frames than this share of the request is an error


@dataclass(frozen=True)
class CalibFrames:
    """Frames ready for :func:`~gradgroup.deploy.calibset.save_calibset`."""

    images: np.ndarray  # (N, H, W, 3) uint8 RGB at model size
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    source: str = "synthetic"


def parse_calib_spec(spec: str) -> tuple[str, str]:
    """``"images:DIR"`` -> ``("images", "DIR")``: a labelled dataset or a frame spec, checked."""
    from gradgroup.deploy.sources import parse_frame_spec

    kind, _, path = spec.partition(":")
    if kind in DATASETS:
        if not path or not Path(path).expanduser().exists():
            raise InputError(f"calibration data {spec!r}: {path or 'the path'} does not exist")
        if not Path(path).expanduser().is_dir():
            raise InputError(f"calibration data {spec!r}: {path} is not a folder")
        return kind, path
    try:
        frames = parse_frame_spec(spec)
    except InputError as exc:
        raise InputError(
            f"calibration data {spec!r} is not understood ({exc}); use synthetic, images:DIR, "
            "video:FILE, camera:N, cityscapes:DIR or folder:DIR"
        ) from None
    return frames.kind, "" if frames.value is None else str(frames.value)


def collect_calib_frames(spec: str, count: int, pre: Preprocess, seed: int = 0) -> CalibFrames:
    """Read ``count`` frames from ``spec`` and resize them as deploy would.

    Raises:
        InputError: unknown spec, missing path, or fewer than ``max(1, count * MIN_FRACTION)``
            readable frames.
    """
    if count < 1:
        raise InputError(f"--calib-frames {count} must be at least 1")
    kind, path = parse_calib_spec(spec)
    if kind in DATASETS:
        rgb, names, skipped = _from_dataset(spec, count)
        images = [resize_frame(im, pre, "RGB") for im in rgb]
    else:
        from gradgroup.deploy.sources import open_source

        size = pre.size if kind == "synthetic" else None
        images, names = [], []
        try:
            source = open_source(spec, size=size, max_frames=count, seed=seed)
        except InputError as exc:  # say which flag: the source's message cannot know it
            raise InputError(f"--calib-data {spec}: {exc}") from None
        with source:
            for frame in tqdm(source, total=count, desc="calibration frames", leave=False):
                images.append(resize_frame(frame.image, pre, "BGR"))
                names.append(frame.name)
            skipped = list(source.skipped)
    if skipped:
        log.warning(
            "calibration: skipped %d unreadable frames: %s", len(skipped), ", ".join(skipped)
        )
    needed = max(1, int(np.ceil(count * MIN_FRACTION)))
    if len(images) < needed:
        bad = f" (unreadable: {', '.join(skipped[:5])})" if skipped else ""
        raise InputError(
            f"calibration data {spec!r} gave {len(images)} usable frames of {count} "
            f"requested{bad}; "
            f"at least {needed} are needed: add frames or lower --calib-frames"
        )
    return CalibFrames(np.stack(images), names, skipped, spec)


def _from_dataset(spec: str, count: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Images (RGB) of a labelled dataset's train split; corrupt samples skipped by name."""
    from gradgroup.deploy.datasets import open_dataset

    data = open_dataset(spec, "train", length=count)
    images, names, skipped = [], [], []
    for i in tqdm(range(len(data)), desc="calibration frames", leave=False):
        try:
            sample = data[i]
        except InputError:  # the dataset stops on corrupt files; calibration skips them
            pairs = getattr(data, "pairs", None)  # (image, label) paths
            skipped.append(pairs[i][0].name if pairs else f"sample {i}")
            continue
        images.append(sample.image)
        names.append(sample.name)
    return images, names, skipped
