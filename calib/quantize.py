"""int8 static quantization with ONNX Runtime, its accuracy cost measured and, if asked, bounded.

``quantize(model, out, cfg)`` runs: checks → fold BN into ConvTranspose → ``quant_pre_process`` →
``quantize_static`` (QDQ) on the calibration set → optional power-of-two scales → fp32 vs int8
evaluation and per-tensor SQNR → the ``max_drop`` loop → atomic write of the model and its JSON.
Calibration ranges are cached after the first pass, so every retry of the loop re-quantizes
without re-running calibration.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gradgroup.deploy.errors import InputError, RunError, first_line
from gradgroup.deploy.fileio import check_writable, to_json
from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta

log = logging.getLogger(__name__)


class Method(enum.Enum):
    """Calibration methods (values are ORT's ``CalibrationMethod`` names)."""

    MINMAX = "MinMax"
    ENTROPY = "Entropy"
    PERCENTILE = "Percentile"


METHODS = {"minmax": Method.MINMAX, "entropy": Method.ENTROPY, "percentile": Method.PERCENTILE}
TYPES = {"u8": "QUInt8", "s8": "QInt8"}


def cpu_has_vnni() -> bool:
    """True on x86 CPUs with AVX-512 VNNI or AVX-VNNI (from /proc/cpuinfo; False if unknown)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def default_activation_type() -> str:
    """u8 activations on x86 (MLAS's fast U8S8 path), s8 elsewhere (ORT's QDQ default, S8S8)."""
    return "u8" if is_x86() else "s8"


@dataclass(frozen=True)
class CalibConfig:
    """How to quantize; maps 1:1 onto ``gradgroup calib`` flags.

    Attributes:
        set_path: calibration set (.npz); None uses ``<model stem>.calib.npz`` or procedural scenes.
        method: ``minmax``, ``entropy`` or ``percentile``.
        percentile: the percentile for ``method="percentile"``.
        per_channel: per-output-channel weight scales.
        activation_type, weight_type: ``u8``/``s8``; activation None = right for this CPU.
        symmetric_activations: zero point fixed at the type's middle.
        power_of_2: TIDL/TDA4VM style: power-of-two scales, symmetric, per-tensor weights.
        reduce_range: 7-bit weights; None = on for U8S8 on x86 without VNNI (ORT's guidance).
        op_types: op types to quantize (None: every type ORT's QDQ quantizer knows).
        nodes_to_exclude: node names kept in float from the start.
        calib_frames: use at most this many calibration frames (None: all).
        max_drop: mIoU points the int8 model may lose; None measures without controlling.
        max_float_layers: most layers the ``max_drop`` loop may keep in float.
        evaluate: measure fp32 vs int8 accuracy (and SQNR).
        eval_data: ``synthetic``, ``cityscapes:DIR`` or ``folder:DIR``.
        eval_frames: frames of ``eval_data`` to evaluate on.
        sqnr_frames: calibration frames used for per-tensor SQNR.
        ort_rewrites: exact rewrites for ONNX Runtime CPU's int8 kernels (calib/ort_rewrites.py:
            dense 1x1 for few groups, no float islands at the input and output); None = on
            unless ``power_of_2`` (the TIDL-emulation model keeps the exported structure).
    """

    set_path: str | None = None
    method: str = "percentile"
    percentile: float = 99.99
    per_channel: bool = True
    activation_type: str | None = None
    weight_type: str = "s8"
    symmetric_activations: bool = False
    power_of_2: bool = False
    reduce_range: bool | None = None
    op_types: tuple[str, ...] | None = None
    nodes_to_exclude: tuple[str, ...] = ()
    calib_frames: int | None = None
    max_drop: float | None = None
    max_float_layers: int = 8
    evaluate: bool = True
    eval_data: str = "synthetic"
    eval_frames: int = 16
    sqnr_frames: int = 4
    ort_rewrites: bool | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"calibration method {self.method!r} is not one of {', '.join(METHODS)}"
            )
        for name in ("activation_type", "weight_type"):
            value = getattr(self, name)
            if value is not None and value not in TYPES:
                raise InputError(f"{name} {value!r} must be 'u8' or 's8'")
        if not 0 < self.percentile <= 100:
            raise InputError(f"percentile {self.percentile} must be in (0, 100]")
        if self.max_drop is not None and self.max_drop < 0:
            raise InputError(f"--max-drop {self.max_drop} must be >= 0 (mIoU points)")
        if self.max_drop is not None and not self.evaluate:
            raise InputError("--max-drop needs the accuracy evaluation; drop --no-eval")
        for name in ("max_float_layers", "eval_frames", "sqnr_frames"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} {getattr(self, name)} must be >= 0")
        if self.calib_frames is not None and self.calib_frames < 1:
            raise InputError(f"calib_frames {self.calib_frames} must be >= 1")

    def effective(self) -> dict[str, Any]:
        """The settings actually used, with defaults resolved and the power-of-2 preset applied."""
        act = self.activation_type or default_activation_type()
        pow2 = self.power_of_2
        reduce = self.reduce_range
        if reduce is None:
            reduce = act == "u8" and self.weight_type == "s8" and is_x86() and not cpu_has_vnni()
        return {
            "format": "QDQ",
            "method": self.method,
            "percentile": self.percentile if self.method == "percentile" else None,
            "activation_type": act,
            "weight_type": self.weight_type,
            "per_channel": self.per_channel and not pow2,
            "symmetric_activations": self.symmetric_activations or pow2,
            "symmetric_weights": True,
            "power_of_2": pow2,
            "reduce_range": reduce,
            "op_types": list(self.op_types) if self.op_types else "all",
            "ort_rewrites": not pow2 if self.ort_rewrites is None else self.ort_rewrites,
        }


@dataclass
class CalibResult:
    """What ``quantize`` produced and measured (``to_dict`` is the JSON next to the model)."""

    path: str
    json_path: str
    size_bytes: int
    seconds: float
    quantize_seconds: float
    calib_source: str
    calib_frames: int
    settings: dict[str, Any]
    ops: dict[str, int]
    runtime: dict[str, Any]
    accuracy: dict[str, Any] | None = None
    sqnr: list[dict[str, Any]] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """The one result line."""
        mb = self.size_bytes / 1e6
        text = f"calib success {self.seconds:.1f} s, saved as {self.path} ({mb:.1f} MB)"
        acc = self.accuracy
        if acc:
            text += (
                f", mIoU {acc['fp32_miou']:.1f} → {acc['int8_miou']:.1f} ({-acc['drop']:+.1f}),"
                f" agreement {acc['agreement']:.1f}%"
            )
        if self.float_nodes:
            text += f", {len(self.float_nodes)} node(s) kept in float"
        return text


# ORT's quantize_static cannot pass histogram sizes to its calibrators, and with its defaults the
# entropy search has one candidate (128 bins, 128 quantized bins) and percentile ranges come out
# symmetric (clamped back to the min/max of ReLU outputs): both then equal minmax. Ranges are
# therefore computed here with ORT's own calibrators and handed to quantize_static as its cache.
# ORT's entropy search is a Python loop over candidate thresholds (bins/2 - quantized bins/2 + 1):
# 2048 bins (961 candidates) took minutes on a 32x64 model, 512 bins (193) take seconds.
HISTOGRAM_BINS = 2048
ENTROPY_BINS = 512
ENTROPY_QUANTIZED_BINS = 128


# Frames per collect_data call: ORT's calibrators hold every tensor of every frame of one call
# in memory (about 1 GB a frame for dg4-light at 1024x512) and merge ranges between calls.
CALIBRATION_CHUNK = 2


class _ListReader:
    """A calibration data reader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def _chunks(reader: Any, size: int) -> Iterator[_ListReader]:
    """The reader's frames from the start, ``size`` at a time."""
    reader.rewind()
    frames = iter(reader.get_next, None)
    while batch := list(itertools.islice(frames, size)):
        yield _ListReader(batch)


def calibrate_ranges(
    prepared: Path, settings: dict[str, Any], reader: Any, cache: Path, work: Path
) -> None:
    """Compute activation ranges with ORT's calibrator for ``settings["method"]`` into ``cache``."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    method = settings["method"]
    symmetric = bool(settings["symmetric_activations"] and not settings["power_of_2"])
    options: dict[str, Any] = {"symmetric": symmetric}
    if method == "entropy":
        options |= {"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
    elif method == "percentile":
        options |= {"num_bins": HISTOGRAM_BINS, "percentile": settings["percentile"]}
    try:
        calibrator = create_calibrator(
            prepared,
            None,
            augmented_model_path=str(work / "augmented.onnx"),
            calibrate_method=getattr(CalibrationMethod, METHODS[method].value),
            extra_options=options,
        )
        # ORT's histogram calibrators print progress to stdout, which belongs to --json.
        with contextlib.redirect_stdout(sys.stderr):
            for chunk in _chunks(reader, CALIBRATION_CHUNK):
                calibrator.collect_data(chunk)
            ranges = calibrator.compute_data()
    except Exception as exc:  # ORT's calibrators raise ValueError/RuntimeError/...
        raise RunError(f"ONNX Runtime calibration failed: {first_line(exc)}") from None
    save_tensors_data(ranges, cache)


def quantize_qdq(
    prepared: Path,
    out: Path,
    settings: dict[str, Any],
    reader: Any,
    cache: Path,
    exclude: tuple[str, ...] = (),
) -> None:
    """One ``quantize_static`` call (QDQ); re-uses calibration ranges cached in ``cache``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .graph import power_of_two_scales

    extra: dict[str, Any] = {
        # Power-of-two mode symmetrizes afterwards (keeping ReLU outputs unsigned, as TIDL
        # does); asking ORT for symmetric activations would keep every ReLU as a float island.
        "ActivationSymmetric": settings["symmetric_activations"] and not settings["power_of_2"],
        "WeightSymmetric": settings["symmetric_weights"],
        # Quantize MaxPool/Resize/Concat whatever feeds them: int8 chains stay unbroken on ORT.
        "ForceQuantizeNoInputCheck": True,
    }
    if settings["method"] == "percentile":
        extra["CalibPercentile"] = settings["percentile"]
    op_types = settings["op_types"]
    try:
        quantize_static(
            str(prepared),
            str(out),
            calibration_data_reader=reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=None if op_types == "all" else list(op_types),
            per_channel=settings["per_channel"],
            reduce_range=settings["reduce_range"],
            activation_type=getattr(QuantType, TYPES[settings["activation_type"]]),
            weight_type=getattr(QuantType, TYPES[settings["weight_type"]]),
            nodes_to_exclude=list(exclude),
            calibrate_method=getattr(CalibrationMethod, METHODS[settings["method"]].value),
            extra_options=extra,
            calibration_cache_path=str(cache),
        )
    except Exception as exc:  # ORT's quantizer raises ValueError/RuntimeError/KeyError...
        raise RunError(f"ONNX Runtime quantization failed: {first_line(exc)}") from None
    if settings["power_of_2"] or settings.get("ort_rewrites"):
        model = onnx.load(str(out))
        if settings["power_of_2"]:
            changed = power_of_two_scales(model)
            log.debug("power-of-two: %d scale tensors rounded up", changed)
        if settings.get("ort_rewrites"):
            from .ort_rewrites import QDQ_REWRITES

            for rewrite in QDQ_REWRITES:
                log.debug("%s: %d place(s)", rewrite.__name__, rewrite(model))
        onnx.save(model, str(out))


def _finish(path: Path, meta: ModelMeta, extra: dict[str, Any]) -> None:
    """Stamp int8 metadata (quantization settings in ``extra``) onto a quantized model file."""
    import onnx

    model = onnx.load(str(path))
    write_meta(model, replace(meta, precision="int8", extra={**meta.extra, **extra}))
    onnx.save(model, str(path))


def quantize(model_path: str | Path, out: str | Path, cfg: CalibConfig) -> CalibResult:
    """Quantize an fp32 gradgroup ONNX model to int8 QDQ for ONNX Runtime.

    Args:
        model_path: fp32 ONNX model exported by gradgroup.
        out: where to write the int8 model; ``<out stem>.json`` gets the report.
        cfg: quantization, evaluation and accuracy-control settings.

    Returns:
        The result: paths, settings, op census, accuracy, SQNR, layers kept in float.

    Raises:
        InputError: unreadable, invalid or already-quantized model; calibration set that does not
            fit the model; bad settings.
        RunError: quantization or evaluation failed.
    """
    import onnx

    from gradgroup.deploy.runtime import disabled_optimizers

    from . import accuracy
    from .graph import op_census, ort_runtime_ops
    from .ort_rewrites import input_prologue
    from .prepare import check_selection, load_float_model, prepare
    from .reader import CalibSetReader, resolve_calibset

    t0 = time.perf_counter()
    model_path, out = Path(model_path), Path(out)
    if out.resolve() == model_path.resolve():
        raise InputError(f"--out {out} would overwrite the fp32 model; choose another name")
    for path in (out, out.with_suffix(".json")):
        check_writable(path, "--out")  # before calibration and evaluation, not after
    model = load_float_model(model_path)
    meta = read_meta(model)
    settings = cfg.effective()
    input_name = model.graph.input[0].name
    # Evaluation frames are read first: bad --eval-data, or data of another class table, fails
    # before any calibration work.
    frames = None
    if cfg.evaluate:
        frames = accuracy.load_eval_frames(cfg.eval_data, meta, cfg.eval_frames, model_path.name)
    before = onnx.GraphProto(node=model.graph.node)  # node names and types prepare may rewrite
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".calib-", dir=out.parent))
    try:
        prepared = prepare(model, work, settings["ort_rewrites"])
        prepped = onnx.load(str(prepared))
        exclude = tuple(cfg.nodes_to_exclude)
        check_selection([before, prepped.graph], cfg.op_types, exclude)
        calib, source = resolve_calibset(model_path, meta, cfg.set_path)
        reader = CalibSetReader(calib, input_name, meta.input_dtype, cfg.calib_frames)
        log.info(
            "quantizing %s: %s calibration on %d frames from %s, %s activations / %s weights%s%s",
            model_path.name,
            settings["method"],
            len(reader),
            source,
            settings["activation_type"],
            settings["weight_type"],
            ", per-channel" if settings["per_channel"] else "",
            ", power-of-two scales" if settings["power_of_2"] else "",
        )
        cache, staged = work / "ranges.json", work / "int8.onnx"

        # With ORT's rewrites the input normalization (uint8-input models) stays in float.
        prologue = tuple(input_prologue(prepped)) if settings["ort_rewrites"] else ()

        def make(nodes: tuple[str, ...]) -> Path:
            quantize_qdq(prepared, staged, settings, reader, cache, prologue + nodes)
            _finish(staged, meta, {})  # metadata first: the evaluator's Segmenter reads it
            return staged

        bench = None if frames is None else accuracy.Evaluator(model_path, meta, *frames)
        tq = time.perf_counter()
        calibrate_ranges(prepared, settings, reader, cache, work)
        make(exclude)
        quantize_seconds = time.perf_counter() - tq
        log.info("quantized in %.1f s", quantize_seconds)

        acc_dict, sqnr, search = None, [], []
        if bench is not None:
            report = bench.measure(staged)
            sqnr = accuracy.tensor_sqnr(prepared, staged, calib, input_name, meta, cfg.sqnr_frames)
            initial_drop = report.drop
            if cfg.max_drop is not None and report.drop > cfg.max_drop:
                report, exclude, search = accuracy.keep_float_until(
                    bench, report, sqnr, cfg.max_drop, cfg.max_float_layers, exclude, make, prepared
                )
            acc_dict = {**report.to_dict(), "eval_data": bench.source, "eval_frames": bench.frames}
            if cfg.max_drop is not None:
                acc_dict["max_drop"] = cfg.max_drop
                acc_dict["initial_drop"] = round(initial_drop, 4)
                acc_dict["max_drop_met"] = report.drop <= cfg.max_drop
            log.debug("\n%s", accuracy.format_report(report, sqnr))

        extra = {
            "quantization": {
                **settings,
                "calib_set": source,
                "calib_frames": len(reader),
                "float_nodes": list(exclude),
            }
        }
        if acc_dict:
            extra["quantization"]["accuracy"] = {
                k: acc_dict[k] for k in ("fp32_miou", "int8_miou", "drop", "agreement")
            }
        _finish(staged, meta, extra)
        final = onnx.load(str(staged))
        ops = op_census(final)
        # As the Segmenter runs it: without the ORT optimizers that would undo the rewrites.
        disabled = tuple(disabled_optimizers(read_meta(final)))
        runtime = ort_runtime_ops(staged, disabled_optimizers=disabled)
        json_path = out.with_suffix(".json")
        result = CalibResult(
            path=str(out),
            json_path=str(json_path),
            size_bytes=staged.stat().st_size,
            seconds=0.0,
            quantize_seconds=round(quantize_seconds, 3),
            calib_source=source,
            calib_frames=len(reader),
            settings=settings,
            ops=ops,
            runtime=runtime,
            accuracy=acc_dict,
            sqnr=sqnr,
            float_nodes=list(exclude),
            search=search,
        )
        result.seconds = round(time.perf_counter() - t0, 3)
        staged_json = work / "int8.json"
        staged_json.write_text(to_json(result.to_dict(), indent=2) + "\n")
        # Model and report appear together or not at all.
        os.replace(staged, out)
        os.replace(staged_json, json_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result
