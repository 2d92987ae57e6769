"""Accuracy of a checkpoint or an ONNX model, and validation during training.

- :func:`evaluate_path` is ``gradgroup eval``'s API: a ``.pt`` checkpoint becomes a torch predictor,
  an ``.onnx`` file a :class:`~gradgroup.deploy.runtime.Segmenter`; both go through deploy's
  torch-free :func:`~gradgroup.deploy.evaluate.evaluate` loop, so the numbers are comparable. The
  ONNX branch never imports torch (torch is imported only inside the torch-side functions).
- :func:`evaluate_model` is the trainer's batched validation: confusion matrices from
  ``bincount`` merged across ranks with one ``all_reduce`` (torchvision's recipe).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gradgroup.deploy.classes import ClassTable
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metrics import SegMetrics
from gradgroup.deploy.preprocess import Preprocess, normalize

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from .distributed import DistInfo


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on."""

    # model (the data the model was trained on, from its checkpoint or metadata; synthetic when
    # it records none) | synthetic | cityscapes:DIR | folder:DIR
    data: str = "model"
    split: str = "val"
    limit: int | None = None  # at most this many images
    device: str = "auto"  # for checkpoints
    progress: bool = True
    # ONNX models: the runtime they are scored on (as for deploy.runtime.Segmenter), so the
    # accuracy is the target provider's, not ORT CPU's.
    provider: str = "cpu"
    threads: int | None = 2
    artifacts: str | None = None
    tidl_options: tuple[tuple[str, str], ...] = ()
    ov_options: tuple[tuple[str, str], ...] = ()
    # Score at the label's resolution (the prediction upsampled, nearest), not the model's.
    full_res: bool = False


@dataclass(frozen=True)
class EvalResult:
    """mIoU, mAcc, per-class IoU and accuracy (None: class absent from the ground truth, left out
    of the means), pixel accuracy and the confusion matrix (rows = ground truth, columns =
    prediction, in the order of ``classes``), all as fractions or pixel counts."""

    model: str
    kind: str  # checkpoint | onnx
    provider: str  # what scored it: torch for checkpoints, else cpu | tidl | openvino
    data: str
    split: str
    images: int
    size: tuple[int, int]  # the model's input size
    full_res: bool  # scored at the label's resolution rather than at ``size``
    miou: float
    macc: float
    pixel_accuracy: float
    iou: dict[str, float | None]
    acc: dict[str, float | None]
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_path(model: str | Path, cfg: EvalConfig = EvalConfig()) -> EvalResult:
    """Evaluate a ``.pt`` checkpoint or an ``.onnx`` model on a labelled dataset, at its input
    size or (``cfg.full_res``) at the labels' size.

    Raises:
        InputError: unknown model type, unreadable model, data whose classes do not match, or
            ``model`` data that is not on this machine.
    """
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from gradgroup.deploy.runtime import Segmenter

        seg = Segmenter(
            path, provider=cfg.provider, threads=cfg.threads, artifacts=cfg.artifacts,
            tidl_options=dict(cfg.tidl_options) or None, ov_options=dict(cfg.ov_options) or None,
        )  # fmt: skip
        predict, spec, classes = seg.predict_rgb, seg.meta.preprocess, seg.meta.classes
        trained_on = seg.meta.data
    elif suffix in (".pt", ".pth"):
        predict, spec, classes, trained_on = _checkpoint_predictor(path, cfg.device)
    else:
        raise InputError(f"model {path} is neither a .pt checkpoint nor an .onnx file")
    from gradgroup.deploy.datasets import check_classes, open_dataset, resolve_data
    from gradgroup.deploy.evaluate import evaluate

    spec_data = resolve_data(cfg.data, trained_on, "--data")
    synthetic = spec_data == "synthetic"  # rendered at the model size: full_res changes nothing
    length = cfg.limit if synthetic else None
    data = open_dataset(spec_data, cfg.split, size=spec.size if synthetic else None, length=length)
    check_classes(data, classes, spec_data, path.name)
    total = len(data) if cfg.limit is None else min(cfg.limit, len(data))
    start = time.perf_counter()
    metrics = evaluate(predict, _pairs(data, total), spec, classes.num_classes, total=total,
                       progress=cfg.progress, full_res=cfg.full_res)  # fmt: skip
    per_class = metrics.to_dict(classes.names)
    return EvalResult(
        model=str(path), kind="onnx" if suffix == ".onnx" else "checkpoint",
        provider=cfg.provider if suffix == ".onnx" else "torch", data=spec_data,
        split=cfg.split, images=total, size=spec.size, full_res=cfg.full_res, miou=metrics.miou,
        macc=metrics.macc, pixel_accuracy=metrics.pixel_accuracy, iou=per_class["iou"],
        acc=per_class["acc"], classes=classes.names, confusion=metrics.matrix,
        seconds=time.perf_counter() - start,
    )  # fmt: skip


def _pairs(data, total: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(total):
        sample = data[i]
        yield sample.image, sample.labels


def _checkpoint_predictor(path: Path, device: str):
    from .checkpoint import (
        checkpoint_classes,
        checkpoint_data,
        checkpoint_preprocess,
        load_checkpoint,
        model_from_checkpoint,
    )
    from .distributed import pick_device

    ckpt = load_checkpoint(path)
    spec: Preprocess = checkpoint_preprocess(ckpt)
    classes: ClassTable = checkpoint_classes(ckpt)
    model = model_from_checkpoint(ckpt)
    predict = torch_predictor(model, spec, pick_device(device))
    return predict, spec, classes, checkpoint_data(ckpt)


def torch_predictor(
    model: nn.Module, spec: Preprocess, device: torch.device | str = "cpu"
) -> Callable[[np.ndarray], np.ndarray]:
    """A deploy-style predictor: uint8 RGB at model size -> (H, W) uint8 class ids."""
    import torch

    device = torch.device(device)
    model = model.to(device).eval()

    @torch.no_grad()
    def predict(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(normalize(rgb, spec)).to(device)
        return model(x)[0].argmax(0).to(torch.uint8).cpu().numpy()

    return predict


def autocast(device: torch.device, amp: bool):
    """Autocast to :func:`amp_dtype` (a no-op where it is None)."""
    import torch

    dtype = amp_dtype(device, amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@contextmanager
def denormals_flushed(device: torch.device) -> Iterator[None]:
    """Flush denormals to zero on the CPU for the block (a no-op on other devices).

    Late in a run Adam's moments and the smallest weights and gradients sink below 1.2e-38; x86
    computes on such denormals ~100x slower (a d-light step at epoch 7 of 8: 2.9-3.4 s instead of
    1.0-1.1 s, one thread, Xeon). Flushing them costs nothing measurable.
    """
    import torch

    flush = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush:
            torch.set_flush_denormal(False)


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision type ``amp`` means on ``device``: bf16 on GPUs that have it (fp16
    otherwise), bf16 on CPUs with AMX matrix units (:func:`cpu_bf16`), None (fp32) elsewhere."""
    import torch

    if amp and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp and device.type == "cpu" and cpu_bf16():
        return torch.bfloat16
    return None


def cpu_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions on AMX tiles (Intel Xeon 4th gen and later).

    Measured on a 2-core Xeon with AMX (bench/train_speed.py): a dg4-light training step with
    bf16 autocast and channels_last runs 2-3x faster than in fp32. Elsewhere (AVX-512 without
    AMX) bf16 is not assumed to pay and training stays fp32.
    """
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def evaluate_model(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    info: DistInfo | None = None,
    stop: Callable[[], None] | None = None,
) -> SegMetrics:
    """mIoU, per-class IoU and pixel accuracy of ``model`` over ``loader`` (labels 255 ignored),
    in fp32; ``stop`` is called before each batch (it may raise to end the loop)."""
    import torch

    from .distributed import all_reduce_sum

    was_training = model.training
    model.eval()
    n = num_classes
    matrix = torch.zeros(n * n, dtype=torch.int64, device=device)
    try:
        with torch.no_grad():
            for images, labels in loader:
                if stop is not None:
                    stop()
                images = images.to(device, non_blocking=True)
                images = images.contiguous(memory_format=torch.channels_last)
                labels = labels.to(device, non_blocking=True).reshape(-1)
                pred = model(images).argmax(1).reshape(-1)
                valid = labels < n  # drops 255 (ignore) and anything out of range
                matrix += torch.bincount(n * labels[valid] + pred[valid], minlength=n * n)
    finally:
        model.train(was_training)
    if info is not None:
        all_reduce_sum(matrix, info)
    return SegMetrics.from_matrix(matrix.reshape(n, n).cpu().numpy())


def recalibrate_bn(
    model: nn.Module,
    batches: Sequence[torch.Tensor],
    device: torch.device,
    check: Callable[[], None] | None = None,
) -> int:
    """Re-estimate every BatchNorm's running mean and variance as the plain average of the
    per-batch statistics over ``batches`` (images only; "precise BN"), dropout off; returns the
    number of images used. An empty ``batches`` leaves the statistics as they are; ``check`` is
    called before each batch (it may raise to stop).

    The running averages kept during training mix statistics of many past weights; when the
    weights move fast (alpha falling) they no longer describe the current network.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return 0
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for images in batches:
                if check is not None:
                    check()
                images = images.to(device, non_blocking=True)
                model(images.contiguous(memory_format=torch.channels_last))
                seen += images.shape[0]
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return seen
