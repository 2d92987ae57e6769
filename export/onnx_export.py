"""Checkpoint -> verified ONNX model with true grouped convs (+ the 8-bit calibration set).

``export_onnx(ckpt, out, cfg)`` runs: load the checkpoint -> deploy form (gradual layers at
alpha = 0 become ``Conv(group=G)``) -> fold BN into transposed convs -> ``torch.onnx.export``
(legacy exporter, static shapes) -> verify against PyTorch -> onnxsim -> graph rewrites (shuffle
form, TIDL legalization) -> verify again -> ArgMax head -> metadata -> TIDL check -> write model,
``<stem>.export.json`` and ``<stem>.calib.npz``. The model appears at ``out`` only when every
step passed (it is written to a temp file and renamed).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx
import torch

from gradgroup import __version__
from gradgroup.deploy.calibset import save_calibset
from gradgroup.deploy.datasets import MODEL_DATA, resolve_data
from gradgroup.deploy.errors import InputError, RunError
from gradgroup.deploy.fileio import atomic_path, check_writable, to_json, write_text_atomic
from gradgroup.deploy.graph.core import grouped_conv_count
from gradgroup.deploy.graph.rewrites import (
    NUMERIC_REWRITES,
    SHUFFLE_REWRITES,
    TIDL_REWRITES,
    apply_rewrites,
    rewrite_names,
)
from gradgroup.deploy.graph.tidl_check import UNSUPPORTED, check_tidl, count_findings
from gradgroup.deploy.metadata import ModelMeta, write_meta
from gradgroup.deploy.session import resolve_target
from gradgroup.train.checkpoint import (
    checkpoint_classes,
    checkpoint_data,
    checkpoint_preprocess,
    load_checkpoint,
    model_from_checkpoint,
)
from gradgroup.train.flops import count_model

from . import verify
from .calib_data import collect_calib_frames, parse_calib_spec
from .prepare import export_module, to_deploy_form

log = logging.getLogger(__name__)

OPSETS = range(11, 19)
INPUTS = ("float", "uint8")
OUTPUTS = ("logits", "argmax")
ARGMAX_DTYPES = {"uint8": onnx.TensorProto.UINT8, "int64": onnx.TensorProto.INT64}
SHUFFLES = ("reshape", "gather")
DEFAULT_SHUFFLE = "gather"  # faster on ORT CPU (see the export issue's note); TIDL forces reshape


@dataclass(frozen=True)
class ExportConfig:
    """How to export. Field names match the ``gradgroup export`` flags one to one."""

    size: tuple[int, int] | None = None  # (H, W); None: the checkpoint's preprocessing size
    opset: int = 17
    input: str = "float"  # float (normalized NCHW) | uint8 (raw RGB, graph normalizes)
    output: str = "logits"  # logits | argmax (class map inside the graph)
    argmax_dtype: str = "uint8"  # uint8 | int64
    shuffle: str | None = None  # reshape | gather; None: gather for ORT, reshape for tidl
    # The runtime the model is for, in deploy's provider words: cpu | openvino (the ONNX Runtime
    # form) | tidl (rewritten into TIDL-legal forms, failing on findings); "ort" means cpu.
    target: str = "cpu"
    dense: bool = False  # export the masked dense form when alpha > 0
    simplify: bool = True
    rewrites: tuple[str, ...] = ()  # extra registered rewrites, run after the shuffle/target ones
    # model: the train split of the checkpoint's own training data (synthetic when it records
    # none); None: no calibration set; otherwise a calib_data spec.
    calib_data: str | None = MODEL_DATA
    calib_frames: int = 64
    verify_frames: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        def check(name: str, value: object, allowed) -> None:
            if value not in allowed:
                raise InputError(f"{name} {value!r} is not one of {', '.join(map(str, allowed))}")

        check("opset", self.opset, OPSETS)
        check("input", self.input, INPUTS)
        check("output", self.output, OUTPUTS)
        check("argmax dtype", self.argmax_dtype, tuple(ARGMAX_DTYPES))
        object.__setattr__(self, "target", resolve_target(self.target))
        if self.shuffle is not None:
            check("shuffle", self.shuffle, SHUFFLES)
            if self.target == "tidl" and self.shuffle == "gather":
                raise InputError(
                    "--shuffle gather is not legal on TIDL (channel Gather); use reshape"
                )
        known = rewrite_names(stage="float")
        for name in self.rewrites:
            check("rewrite", name, known)
        if self.verify_frames < 1:
            raise InputError(f"verify_frames {self.verify_frames} must be at least 1")
        if self.calib_data is not None:
            if self.calib_data != MODEL_DATA:  # resolved against the checkpoint when exporting
                parse_calib_spec(self.calib_data)
            if self.calib_frames < 1:
                raise InputError(f"--calib-frames {self.calib_frames} must be at least 1")

    @property
    def shuffle_form(self) -> str:
        """The shuffle representation actually used."""
        return self.shuffle or ("reshape" if self.target == "tidl" else DEFAULT_SHUFFLE)


@dataclass
class ExportResult:
    """What an export produced and how it verified."""

    path: Path
    seconds: float
    size_bytes: int
    arch: str
    grouped_convs: int
    params: int
    macs: int
    alpha: float
    checks: list[verify.Check]
    rewrites: dict[str, int]
    tidl: dict[str, int]
    tidl_findings: list[dict] = field(default_factory=list)
    calib_path: Path | None = None
    calib_frames: int = 0
    calib_skipped: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        data["path"], data["calib_path"] = str(self.path), self.calib_path and str(self.calib_path)
        return data

    def summary(self) -> str:
        """The one result line."""
        tidl = self.tidl[UNSUPPORTED]
        calib = f", calib {self.calib_frames} frames" if self.calib_path else ""
        return (
            f"export success {self.seconds:.1f} s, saved as {self.path.name} "
            f"({self.size_bytes / 1e6:.1f} MB), {self.grouped_convs} grouped convs, "
            f"TIDL: {tidl} finding{'s' * (tidl != 1)}{calib}"
        )


@dataclass(frozen=True)
class Trace:
    """One traced geometry: the raw ONNX graph, its verification frames, PyTorch's reference
    logits on them and the raw graph's check against that reference."""

    raw: onnx.ModelProto
    frames: Any
    reference: Any
    check: verify.Check


class ExportSource:
    """One checkpoint loaded for export, shared by several exports of it.

    The pipeline writes three files per checkpoint (ORT form, TIDL form, deployment size). They
    share the loaded checkpoint, its grouped model, and per input geometry the :class:`Trace`,
    which is computed once.
    """

    def __init__(self, ckpt_path: str | Path) -> None:
        self.ckpt = load_checkpoint(ckpt_path)
        self.sha256 = _sha256(ckpt_path)
        self._models: dict[bool, tuple[torch.nn.Module, float]] = {}
        self._traces: dict[tuple, Trace] = {}

    def model(self, dense: bool) -> tuple[torch.nn.Module, float]:
        """The deploy-form model (gradual layers converted) and its final alpha."""
        if dense not in self._models:
            model = model_from_checkpoint(self.ckpt).eval()
            self._models[dense] = to_deploy_form(model, dense)
        return self._models[dense]

    def trace(self, pre, cfg: ExportConfig) -> Trace:
        """The traced graph of this geometry, verified against PyTorch."""
        key = (cfg.dense, pre, cfg.input, cfg.opset, cfg.verify_frames)
        if key not in self._traces:
            model = self.model(cfg.dense)[0]
            frames = verify.verification_frames(pre, cfg.verify_frames)
            reference = verify.torch_logits(model, frames, pre)
            raw = _torch_export(model, pre, cfg)
            outputs = verify.ort_outputs(raw, frames, pre, _input_dtype(cfg))
            check = verify.compare("raw", reference, outputs)
            self._traces[key] = Trace(raw, frames, reference, check)
        return self._traces[key]


def _input_dtype(cfg: ExportConfig) -> str:
    return "uint8" if cfg.input == "uint8" else "float32"


def export_onnx(
    ckpt: str | Path | ExportSource, out: str | Path, cfg: ExportConfig = ExportConfig()
) -> ExportResult:
    """Export a checkpoint to a verified ONNX model (and its calibration set).

    Args:
        ckpt: a gradgroup checkpoint (``train/checkpoint.py`` format), or one already loaded as
            an :class:`ExportSource` to share its work between several exports of it.
        out: the ONNX file to write; ``<stem>.export.json`` and ``<stem>.calib.npz`` go beside it.
        cfg: export options.

    Returns:
        The export result (also written as ``<stem>.export.json``).

    Raises:
        InputError: unreadable checkpoint or calibration data, bad options.
        RunError: alpha > 0 without ``dense``, verification failure, an illegal TIDL graph.
    """
    start = time.perf_counter()
    out = Path(out)
    if out.suffix != ".onnx":
        raise InputError(f"output {out} must end in .onnx")
    for path in (out, out.with_suffix(".export.json"), out.with_suffix(".calib.npz")):
        check_writable(path, "--out")  # before the export's minutes, not after
    source = ckpt if isinstance(ckpt, ExportSource) else ExportSource(ckpt)
    ckpt = source.ckpt
    arch = ckpt["model_args"]["arch"]
    pre = checkpoint_preprocess(ckpt)
    if cfg.size is not None:
        pre = replace(pre, height=cfg.size[0], width=cfg.size[1])
    if pre.height % 8 or pre.width % 8:  # three stride-2 downsamplers, then three x2 upsamplers
        raise InputError(
            f"input size {pre.height}x{pre.width} must be a multiple of 8, e.g. 512x1024"
        )
    model, alpha = source.model(cfg.dense)
    count = count_model(model, pre.size)

    trained_on = checkpoint_data(ckpt)
    calib, calib_spec = None, None
    if cfg.calib_data is not None:  # read it first: bad calibration input fails before any work
        calib_spec = resolve_data(cfg.calib_data, trained_on, "--calib-data")
        calib = collect_calib_frames(calib_spec, cfg.calib_frames, pre, cfg.seed)

    trace = source.trace(pre, cfg)
    raw, frames, reference = trace.raw, trace.frames, trace.reference
    grouped = grouped_conv_count(raw)
    input_dtype = _input_dtype(cfg)
    checks = [trace.check]

    final, rewrites = _optimize(raw, cfg, grouped)
    stage = (
        "+".join(["simplified"] * cfg.simplify + ["rewritten"] * any(rewrites.values())) or "final"
    )
    checks.append(
        verify.compare(stage, reference, verify.ort_outputs(final, frames, pre, input_dtype))
    )
    if cfg.output == "argmax":
        _append_argmax(final, ARGMAX_DTYPES[cfg.argmax_dtype])
        out_final = verify.ort_outputs(final, frames, pre, input_dtype)
        checks.append(verify.compare(stage + "+argmax", reference, out_final))
    log.debug("%s", verify.format_checks(checks))
    verify.require(checks)

    findings = check_tidl(final)
    tidl = count_findings(findings)
    if cfg.target == "tidl" and tidl[UNSUPPORTED]:
        first = next(f for f in findings if f.severity == UNSUPPORTED)
        raise RunError(
            f"--target tidl: {tidl[UNSUPPORTED]} nodes are still not TIDL-legal after the rewrites,"
            f" first {first.node} ({first.op}): {first.message}"
        )

    meta = ModelMeta(
        arch=arch,
        classes=checkpoint_classes(ckpt),
        preprocess=pre,
        input_dtype=input_dtype,
        output=cfg.output,
        alpha=alpha,
        params=count.params,
        macs=count.macs,
        precision="fp32",
        data=trained_on,
        extra={
            "checkpoint_sha256": source.sha256,
            "gradgroup_version": __version__,
            "opset": cfg.opset,
            "shuffle": cfg.shuffle_form,
            "target": cfg.target,
            "grouped_convs": grouped,
        },
    )
    write_meta(final, meta)
    onnx.checker.check_model(final)

    result = ExportResult(
        path=out,
        seconds=0.0,
        size_bytes=0,
        arch=arch,
        grouped_convs=grouped,
        params=count.params,
        macs=count.macs,
        alpha=alpha,
        checks=checks,
        rewrites=rewrites,
        tidl=tidl,
        tidl_findings=[f.to_dict() for f in findings],
        config={**asdict(cfg), "shuffle": cfg.shuffle_form, "calib_data": calib_spec},
    )
    _write_outputs(final, out, result, calib, pre, start)
    return result


def _torch_export(model: torch.nn.Module, pre, cfg: ExportConfig) -> onnx.ModelProto:
    """The legacy TorchScript exporter (folds Conv+BN in eval mode; static shapes)."""
    module = export_module(model, pre, cfg.input == "uint8")
    shape = (1, pre.height, pre.width, 3) if pre.layout == "NHWC" else (1, 3, pre.height, pre.width)
    dummy = torch.zeros(shape, dtype=torch.uint8 if cfg.input == "uint8" else torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and the tracer that shapes become
        # constants: both expected, since the graph is meant to have static shapes.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            dummy,
            buffer,
            opset_version=cfg.opset,
            dynamo=False,
            do_constant_folding=True,
            input_names=["input"],
            output_names=["logits"],
        )
    return onnx.load_from_string(buffer.getvalue())


def _optimize(
    raw: onnx.ModelProto, cfg: ExportConfig, grouped: int
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """onnxsim (grouped-conv count must not change) then the shuffle and target rewrites."""
    model = onnx.ModelProto()
    model.CopyFrom(raw)
    if cfg.simplify:
        from onnxsim import simplify

        model, ok = simplify(model)
        if not ok:
            raise RunError(
                "onnxsim could not validate the simplified graph; retry with --no-simplify"
            )
        if grouped_conv_count(model) != grouped:
            raise RunError(
                f"onnxsim changed the number of grouped convs ({grouped} -> "
                f"{grouped_conv_count(model)}); retry with --no-simplify"
            )
    names = [*NUMERIC_REWRITES, *SHUFFLE_REWRITES[cfg.shuffle_form]]
    if cfg.target == "tidl":
        names += [n for n in TIDL_REWRITES if n not in names]
    names += [n for n in cfg.rewrites if n not in names]
    counts = apply_rewrites(model, names, stage="float")
    if grouped_conv_count(model) != grouped:  # rewrites must keep every grouped conv grouped
        raise RuntimeError(f"graph rewrites {names} changed the number of grouped convs")
    return model, counts


def _append_argmax(model: onnx.ModelProto, dtype: int) -> None:
    """Class map inside the graph: ArgMax over channels (axis 1 = -3, keepdims 1), then Cast."""
    graph = model.graph
    logits = graph.output[0].name
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    argmax_out = "classes" if dtype == onnx.TensorProto.INT64 else "classes_int64"
    # axis 1 rather than -3: TI's operator table literally says "only axis == 1" (same axis, 4-D).
    graph.node.append(
        onnx.helper.make_node("ArgMax", [logits], [argmax_out], name="ArgMax", axis=1, keepdims=1)
    )
    if dtype != onnx.TensorProto.INT64:
        graph.node.append(
            onnx.helper.make_node("Cast", [argmax_out], ["classes"], name="CastClasses", to=dtype)
        )
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info("classes", dtype, [dims[0], 1, *dims[2:]])
    )


def _write_outputs(
    model: onnx.ModelProto, out: Path, result: ExportResult, calib, pre, start: float
) -> None:
    """Model via temp file + rename (last), calibration set and export report beside it."""
    written: list[Path] = []
    try:
        with atomic_path(out) as tmp:  # the model is renamed into place last
            onnx.save(model, str(tmp))
            if calib is not None:
                result.calib_path = out.with_suffix(".calib.npz")
                save_calibset(result.calib_path, calib.images, calib.names, pre)
                written.append(result.calib_path)
                result.calib_frames, result.calib_skipped = len(calib.names), calib.skipped
            result.size_bytes = tmp.stat().st_size
            result.seconds = time.perf_counter() - start
            written.append(
                write_text_atomic(
                    out.with_suffix(".export.json"), to_json(result.to_dict(), indent=2) + "\n"
                )
            )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
