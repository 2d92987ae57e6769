"""Calibration frames for ONNX Runtime's quantizer: finding, checking and reading a calibration set.

The exporter writes ``<model stem>.calib.npz`` next to the model; ``--set`` overrides it. Where
neither exists, it is read from the train images of the data the model was trained on (its
metadata's ``data``); for synthetic data, a model that does not record its data, or data not on
this machine, it is rendered from procedural street scenes of training seeds (never validation
ones). Either way calibration runs and the result says where its frames came from.
:class:`CalibSetReader` is ORT's ``CalibrationDataReader`` protocol over a set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from gradgroup.deploy.calibset import CalibSet, load_calibset
from gradgroup.deploy.errors import InputError, MissingDependencyError
from gradgroup.deploy.metadata import ModelMeta

log = logging.getLogger(__name__)

DEFAULT_SCENE_FRAMES = 16


class CalibSetReader(CalibrationDataReader):
    """Feeds ``{input_name: tensor}`` per frame of a calibration set, then None.

    Args:
        calib: the calibration set.
        input_name: the model's input tensor name.
        input_dtype: ``"float32"`` (normalized) or ``"uint8"`` (raw RGB), as the model expects.
        limit: use only the first ``limit`` frames (None: all).
    """

    def __init__(
        self,
        calib: CalibSet,
        input_name: str,
        input_dtype: str = "float32",
        limit: int | None = None,
    ) -> None:
        self.calib = calib
        self.input_name = input_name
        self.input_dtype = input_dtype
        self.count = len(calib) if limit is None else min(limit, len(calib))
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self.count:
            return None
        self._next += 1
        return {self.input_name: self.calib.model_input(self._next - 1, self.input_dtype)}

    def rewind(self) -> None:
        """Start again from the first frame (ORT calls this for multi-pass calibrators)."""
        self._next = 0

    def __len__(self) -> int:
        return self.count


def default_set_path(model_path: str | Path) -> Path:
    """``<dir>/<stem>.calib.npz``: where ``gradgroup export`` writes a model's calibration set."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".calib.npz")


def check_calibset(calib: CalibSet, meta: ModelMeta, source: str) -> None:
    """Raise InputError unless the set's frames match the model's input size.

    The set stores uint8 RGB frames; any other dtype, or a size other than the model's, would
    calibrate a different input distribution than the one deployed.
    """
    want = meta.preprocess.size
    got = tuple(calib.images.shape[1:3])
    if got != want:
        raise InputError(
            f"calibration set {source} holds {got[0]}x{got[1]} frames but the model takes "
            f"{want[0]}x{want[1]}; re-export the set at the model's size"
        )
    if calib.images.dtype != np.uint8:
        raise InputError(
            f"calibration set {source} holds {calib.images.dtype} frames, expected uint8"
        )
    pre = calib.preprocess
    if (tuple(pre.mean), tuple(pre.std)) != (
        tuple(meta.preprocess.mean),
        tuple(meta.preprocess.std),
    ):
        log.warning("calibration set %s was written with other mean/std; using the model's", source)


def scene_calibset(
    meta: ModelMeta, frames: int = DEFAULT_SCENE_FRAMES, seed: int = 1234
) -> CalibSet:
    """A calibration set rendered from procedural street scenes at the model's size (training
    seeds ``seed..seed + frames - 1``, below the validation seeds)."""
    try:
        from gradgroup.deploy.scenes import render_scene
    except ImportError as exc:
        raise MissingDependencyError(
            f"no calibration set given and procedural scenes are unavailable ({exc}); "
            "pass --set FILE (gradgroup export writes <model>.calib.npz)"
        ) from None
    from gradgroup.deploy.preprocess import resize_frame

    spec = meta.preprocess
    images = []
    for i in range(frames):
        rgb, _ = render_scene(seed + i, spec.size)
        images.append(resize_frame(rgb, spec, frame_order="RGB"))
    names = tuple(f"scene{seed + i:06d}" for i in range(frames))
    return CalibSet(np.stack(images), names, spec)


def resolve_calibset(
    model_path: str | Path, meta: ModelMeta, set_path: str | Path | None = None
) -> tuple[CalibSet, str]:
    """Find, load and check the calibration set for a model.

    Args:
        model_path: the fp32 ONNX model.
        meta: its metadata (input size and preprocessing).
        set_path: explicit set (``--set``); None looks for ``<model stem>.calib.npz``.

    Returns:
        (the set, a description of where it came from).

    Raises:
        InputError: an explicit set is missing, unreadable or does not fit the model.
    """
    if set_path is not None:
        calib, source = load_calibset(set_path), str(set_path)
    elif default_set_path(model_path).is_file():
        source = str(default_set_path(model_path))
        calib = load_calibset(source)
    else:
        calib, source = _fallback_calibset(model_path, meta)
    check_calibset(calib, meta, source)
    return calib, source


def _fallback_calibset(model_path: str | Path, meta: ModelMeta) -> tuple[CalibSet, str]:
    """Without a set: the train images of the model's own data, else procedural scenes."""
    data = meta.data
    if data and data != "synthetic":
        try:
            calib = dataset_calibset(meta, data)
        except InputError as exc:
            log.warning("the model's training data is not usable for calibration (%s)", exc)
        else:
            log.warning(
                "no calibration set at %s; using %d train images of %s (the model's data)",
                default_set_path(model_path), len(calib), data,
            )  # fmt: skip
            return calib, f"{data} train ({len(calib)} frames)"
    log.warning(
        "no calibration set at %s; rendering %d procedural scenes instead "
        "(calibrate on real frames for deployment: --set FILE)",
        default_set_path(model_path),
        DEFAULT_SCENE_FRAMES,
    )
    calib = scene_calibset(meta)
    return calib, f"procedural scenes ({len(calib)} frames)"


def dataset_calibset(meta: ModelMeta, spec: str, frames: int = DEFAULT_SCENE_FRAMES) -> CalibSet:
    """A calibration set of the first ``frames`` train images of labelled dataset ``spec``.

    Raises:
        InputError: the dataset is missing or a file in it is unreadable.
    """
    from gradgroup.deploy.datasets import open_dataset
    from gradgroup.deploy.preprocess import resize_frame

    data = open_dataset(spec, "train", length=frames)
    samples = [data[i] for i in range(len(data))]
    images = np.stack([resize_frame(s.image, meta.preprocess, frame_order="RGB") for s in samples])
    return CalibSet(images, tuple(s.name for s in samples), meta.preprocess)
