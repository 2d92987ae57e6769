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
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gradgroup.deploy.errors import InputError, RunError, first_line
from gradgroup.deploy.fileio import check_writable, publish, to_json
from gradgroup.deploy.metadata import read_meta, write_meta

from .accuracy import CalibAccuracy

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
        set_path: calibration set (.npz); None uses ``<model stem>.calib.npz``, else the train
            images of the model's training data, else procedural scenes (calib/reader.py).
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
        max_drop: mIoU the int8 model may lose, as a fraction (0.01: one point; the CLI's
            ``--max-drop`` takes points); None measures without controlling.
        max_float_layers: most layers the ``max_drop`` loop may keep in float.
        evaluate: measure fp32 vs int8 accuracy (and SQNR).
        eval_data: ``model`` (the val split of the data the model was trained on, from its
            metadata; synthetic when it records none), ``synthetic``, ``cityscapes:DIR`` or
            ``folder:DIR``.
        eval_frames: frames of ``eval_data`` to evaluate on.
        sqnr_frames: calibration frames used for per-tensor SQNR.
        ort_rewrites: exact rewrites for ONNX Runtime CPU's int8 kernels
            (deploy/graph/rewrites/ort.py: dense 1x1 for few groups, no float islands at the
            input and output); None = on unless ``power_of_2`` (the TIDL-emulation model
            keeps the exported structure).
        skip_rewrites: names of ``ort_rewrites`` to leave out (measured per provider: what helps
            MLAS may not help another engine); ``float_maxpool_on_input`` includes keeping the
            input normalization in float.
        equalize: rescale the channels of conv-relu-conv chains from the calibration frames so
            each ReLU output uses the 8-bit range evenly (calib/equalize.py; exact in float);
            None = on with per-channel weights (per-tensor weights would pay for it).
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
    eval_data: str = "model"  # deploy.datasets.MODEL_DATA
    eval_frames: int = 16
    sqnr_frames: int = 4
    ort_rewrites: bool | None = None
    skip_rewrites: tuple[str, ...] = ()
    equalize: bool | None = None

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
        if self.max_drop is not None and not 0 <= self.max_drop <= 1:
            raise InputError(
                f"max_drop {self.max_drop} must be a fraction of mIoU in [0, 1] "
                f"(--max-drop {100 * self.max_drop:g} points)"
            )
        if self.max_drop is not None and not self.evaluate:
            raise InputError("--max-drop needs the accuracy evaluation; drop --no-eval")
        for name in ("max_float_layers", "eval_frames", "sqnr_frames"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} {getattr(self, name)} must be >= 0")
        if self.calib_frames is not None and self.calib_frames < 1:
            raise InputError(f"calib_frames {self.calib_frames} must be >= 1")
        from gradgroup.deploy.graph.rewrites.ort import ORT_FLOAT_REWRITES, ORT_QDQ_REWRITES

        known = ORT_FLOAT_REWRITES + ORT_QDQ_REWRITES
        if unknown := [n for n in self.skip_rewrites if n not in known]:
            raise InputError(
                f"--skip-rewrites {' '.join(unknown)}: not an ORT rewrite ({', '.join(known)})"
            )

    def resolved(self) -> QuantSettings:
        """The settings actually used, with defaults resolved and the power-of-2 preset applied."""
        act = self.activation_type or default_activation_type()
        pow2 = self.power_of_2
        reduce = self.reduce_range
        if reduce is None:
            reduce = act == "u8" and self.weight_type == "s8" and is_x86() and not cpu_has_vnni()
        return QuantSettings(
            method=self.method,
            percentile=self.percentile if self.method == "percentile" else None,
            activation_type=act,
            weight_type=self.weight_type,
            per_channel=self.per_channel and not pow2,
            symmetric_activations=self.symmetric_activations or pow2,
            power_of_2=pow2,
            reduce_range=reduce,
            op_types=self.op_types,
            ort_rewrites=not pow2 if self.ort_rewrites is None else self.ort_rewrites,
            skipped_rewrites=tuple(self.skip_rewrites),
            equalized=(self.per_channel and not pow2) if self.equalize is None else self.equalize,
        )


@dataclass(frozen=True)
class QuantSettings:
    """A :class:`CalibConfig` resolved for this machine: what ``quantize_static`` is given.

    ``to_dict`` is the ``quantization`` entry of the int8 model's metadata and JSON report.
    """

    method: str
    percentile: float | None
    activation_type: str
    weight_type: str
    per_channel: bool
    symmetric_activations: bool
    power_of_2: bool
    reduce_range: bool
    op_types: tuple[str, ...] | None  # None: every type ORT's QDQ quantizer knows
    ort_rewrites: bool
    skipped_rewrites: tuple[str, ...] = ()  # of the ORT rewrites, those left out
    equalized: bool = False  # activation equalization (calib/equalize.py) before calibration
    symmetric_weights: bool = True
    format: str = "QDQ"

    @property
    def ort_symmetric_activations(self) -> bool:
        """What ORT is asked for: power-of-two symmetrizes afterwards, keeping ReLUs unsigned
        (as TIDL does); asking ORT would keep every ReLU as a float island."""
        return self.symmetric_activations and not self.power_of_2

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["op_types"] = list(self.op_types) if self.op_types else "all"
        return {"format": out.pop("format"), **out}


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
    settings: QuantSettings
    ops: dict[str, int]
    runtime: dict[str, Any]
    accuracy: CalibAccuracy | None = None
    sqnr: list[dict[str, Any]] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["settings"] = self.settings.to_dict()
        out["accuracy"] = None if self.accuracy is None else self.accuracy.to_dict()
        return out

    def summary(self) -> str:
        """The one result line (percent, as printed everywhere)."""
        mb = self.size_bytes / 1e6
        text = f"calib success {self.seconds:.1f} s, saved as {self.path} ({mb:.1f} MB)"
        if self.accuracy:
            r = self.accuracy.report
            text += (
                f", mIoU {100 * r.fp32_miou:.1f} → {100 * r.int8_miou:.1f} % "
                f"({-100 * r.drop:+.1f} points), agreement {100 * r.agreement:.1f} %"
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
    prepared: Path, settings: QuantSettings, reader: Any, cache: Path, work: Path
) -> None:
    """Compute activation ranges with ORT's calibrator for ``settings.method`` into ``cache``."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    method = settings.method
    options: dict[str, Any] = {"symmetric": settings.ort_symmetric_activations}
    if method == "entropy":
        options |= {"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
    elif method == "percentile":
        options |= {"num_bins": HISTOGRAM_BINS, "percentile": settings.percentile}
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
    settings: QuantSettings,
    reader: Any,
    cache: Path,
    exclude: tuple[str, ...] = (),
) -> Any:
    """One ``quantize_static`` call (QDQ) re-using the ranges in ``cache``; the int8 model
    (with power-of-two scales and ORT's rewrites applied) is returned in memory."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from gradgroup.deploy.graph.rewrites import ORT_QDQ_REWRITES, apply_rewrites

    extra: dict[str, Any] = {
        "ActivationSymmetric": settings.ort_symmetric_activations,
        "WeightSymmetric": settings.symmetric_weights,
        # Quantize MaxPool/Resize/Concat whatever feeds them: int8 chains stay unbroken on ORT.
        "ForceQuantizeNoInputCheck": True,
    }
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    try:
        quantize_static(
            str(prepared),
            str(out),
            calibration_data_reader=reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=getattr(QuantType, TYPES[settings.activation_type]),
            weight_type=getattr(QuantType, TYPES[settings.weight_type]),
            nodes_to_exclude=list(exclude),
            calibrate_method=getattr(CalibrationMethod, METHODS[settings.method].value),
            extra_options=extra,
            calibration_cache_path=str(cache),
        )
    except Exception as exc:  # ORT's quantizer raises ValueError/RuntimeError/KeyError...
        raise RunError(f"ONNX Runtime quantization failed: {first_line(exc)}") from None
    model = onnx.load(str(out))
    names = ["power_of_two_scales"] if settings.power_of_2 else []
    if settings.ort_rewrites:
        names += [n for n in ORT_QDQ_REWRITES if n not in settings.skipped_rewrites]
    apply_rewrites(model, names, stage="qdq")  # each logs its count at debug level
    return model


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
    t0 = time.perf_counter()
    job = _Quantization(Path(model_path), Path(out), cfg)  # every check before any work
    out_dir = job.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".calib-", dir=out_dir))
    try:
        job.prepare(work)
        job.calibrate()
        accuracy = job.control_accuracy()
        return job.finalize(accuracy, t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Quantization:
    """One ``quantize`` call in four steps: prepare, calibrate, control accuracy, finalize.

    The candidate int8 model stays in memory (``self.int8``); the staged file is written once
    per candidate, because the evaluator and ORT's op census read models from files.
    """

    def __init__(self, model_path: Path, out: Path, cfg: CalibConfig) -> None:
        import onnx

        from . import accuracy
        from .prepare import load_float_model

        if out.resolve() == model_path.resolve():
            raise InputError(f"--out {out} would overwrite the fp32 model; choose another name")
        for path in (out, out.with_suffix(".json")):
            check_writable(path, "--out")  # before calibration and evaluation, not after
        self.model_path, self.out, self.cfg = model_path, out, cfg
        self.model = load_float_model(model_path)
        self.meta = read_meta(self.model)
        self.settings = cfg.resolved()
        self.exclude = tuple(cfg.nodes_to_exclude)
        # Evaluation frames are read first: bad --eval-data, or data of another class table,
        # fails before any calibration work.
        self.frames = None
        if cfg.evaluate:
            self.frames = accuracy.load_eval_frames(
                cfg.eval_data, self.meta, cfg.eval_frames, model_path.name
            )
        self.before = onnx.GraphProto(node=self.model.graph.node)  # names prepare may rewrite

    def prepare(self, work: Path) -> None:
        """Float rewrites and ORT's pre-processing; the calibration set and its reader."""
        import onnx

        from gradgroup.deploy.graph.rewrites.ort import input_prologue

        from .prepare import check_selection, excluded_nodes, prepare
        from .reader import CalibSetReader, resolve_calibset

        self.work = work
        s = self.settings
        self.prepared = prepare(self.model, work, s.ort_rewrites, s.skipped_rewrites)
        prepped = onnx.load(str(self.prepared))
        check_selection([self.before, prepped.graph], self.cfg.op_types, self.exclude)
        self.exclude = excluded_nodes(prepped.graph, self.exclude)
        self.calib, self.source = resolve_calibset(self.model_path, self.meta, self.cfg.set_path)
        self.input_name = self.model.graph.input[0].name
        self.reader = CalibSetReader(
            self.calib, self.input_name, self.meta.input_dtype, self.cfg.calib_frames
        )
        if s.equalized:
            from .equalize import equalize_file

            equalize_file(self.prepared, iter(self.reader.get_next, None))
            self.reader.rewind()
        # With ORT's rewrites the input normalization (uint8-input models) stays in float.
        float_input = s.ort_rewrites and "float_maxpool_on_input" not in s.skipped_rewrites
        self.prologue = tuple(input_prologue(prepped)) if float_input else ()
        self.cache, self.staged = work / "ranges.json", work / "int8.onnx"

    def calibrate(self) -> None:
        """Activation ranges once (cached), then the first int8 candidate."""
        s = self.settings
        log.info(
            "quantizing %s: %s calibration on %d frames from %s, %s activations / %s weights%s%s",
            self.model_path.name, s.method, len(self.reader), self.source, s.activation_type,
            s.weight_type, ", per-channel" if s.per_channel else "",
            ", power-of-two scales" if s.power_of_2 else "",
        )  # fmt: skip
        tq = time.perf_counter()
        calibrate_ranges(self.prepared, s, self.reader, self.cache, self.work)
        self.make(self.exclude)
        self.quantize_seconds = time.perf_counter() - tq
        log.info("quantized in %.1f s", self.quantize_seconds)

    def make(self, nodes: tuple[str, ...]) -> Path:
        """Quantize with ``nodes`` kept in float; the candidate is staged with its metadata
        (the evaluator's Segmenter reads it)."""
        import onnx

        self.int8 = quantize_qdq(
            self.prepared, self.staged, self.settings, self.reader, self.cache,
            self.prologue + nodes,
        )  # fmt: skip
        self._stamp({})
        onnx.save(self.int8, str(self.staged))
        return self.staged

    def control_accuracy(self) -> CalibAccuracy | None:
        """Measure fp32 vs int8 and per-tensor SQNR; keep layers in float to meet ``max_drop``."""
        from . import accuracy

        self.sqnr, self.search = [], []
        if self.frames is None:
            return None
        cfg = self.cfg
        bench = accuracy.Evaluator(self.model_path, self.meta, *self.frames)
        report = bench.measure(self.staged)
        self.sqnr = accuracy.tensor_sqnr(
            self.prepared, self.staged, self.calib, self.input_name, self.meta, cfg.sqnr_frames
        )
        initial_drop = report.drop
        if cfg.max_drop is not None and report.drop > cfg.max_drop:
            report, self.exclude, self.search = accuracy.keep_float_until(
                bench, report, self.sqnr, cfg.max_drop, cfg.max_float_layers, self.exclude,
                self.make, self.prepared,
            )  # fmt: skip
        log.debug("\n%s", accuracy.format_report(report, self.sqnr))
        return CalibAccuracy(
            report, bench.source, bench.frames, cfg.max_drop,
            initial_drop if cfg.max_drop is not None else None,
        )  # fmt: skip

    def finalize(self, acc: CalibAccuracy | None, t0: float) -> CalibResult:
        """Final metadata on the kept model, its op census, and model + report written together."""
        import onnx

        from gradgroup.deploy.runtime import disabled_optimizers

        from .graph import op_census, ort_runtime_ops

        extra = {
            "quantization": {
                **self.settings.to_dict(),
                "calib_set": self.source,
                "calib_frames": len(self.reader),
                "float_nodes": list(self.exclude),
            }
        }
        if acc is not None:
            extra["quantization"]["accuracy"] = acc.report.to_dict()
        self._stamp(extra)
        onnx.save(self.int8, str(self.staged))
        # As the Segmenter runs it: without the ORT optimizers that would undo the rewrites.
        disabled = tuple(disabled_optimizers(read_meta(self.int8)))
        result = CalibResult(
            path=str(self.out),
            json_path=str(self.out.with_suffix(".json")),
            size_bytes=self.staged.stat().st_size,
            seconds=0.0,
            quantize_seconds=round(self.quantize_seconds, 3),
            calib_source=self.source,
            calib_frames=len(self.reader),
            settings=self.settings,
            ops=op_census(self.int8),
            runtime=ort_runtime_ops(self.staged, disabled_optimizers=disabled),
            accuracy=acc,
            sqnr=self.sqnr,
            float_nodes=list(self.exclude),
            search=self.search,
        )
        result.seconds = round(time.perf_counter() - t0, 3)
        staged_json = self.work / "int8.json"
        staged_json.write_text(to_json(result.to_dict(), indent=2) + "\n")
        # Model and report appear together or not at all, each on disk before its rename.
        publish(self.staged, self.out)
        publish(staged_json, self.out.with_suffix(".json"))
        return result

    def _stamp(self, extra: dict[str, Any]) -> None:
        """int8 metadata (quantization settings in ``extra``) on the in-memory model."""
        meta = replace(self.meta, precision="int8", extra={**self.meta.extra, **extra})
        write_meta(self.int8, meta)
