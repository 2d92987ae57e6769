"""Before quantizing: refuse what cannot be quantized, and rewrite the float graph for ORT.

``load_float_model`` checks the file (readable, valid, a segmenter, not already quantized),
``check_selection`` the ``--op-types`` and ``--exclude`` choices (``excluded_nodes`` maps the
latter onto the rewritten graph); ``prepare`` folds
BatchNormalization ONNX Runtime cannot fold, runs ORT's ``quant_pre_process`` and turns what BN
is left into a quantizable 1x1 depthwise Conv, so the int8 graph has no float islands ORT must
leave between integer kernels.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
from collections.abc import Iterable
from pathlib import Path

from gradgroup.deploy.errors import InputError, RunError, first_line
from gradgroup.deploy.graph.core import load_onnx
from gradgroup.deploy.runtime import check_segmenter

log = logging.getLogger(__name__)


def load_float_model(model_path: str | Path):
    """Load an fp32 ONNX segmenter; InputError if missing, corrupt, invalid, not a segmenter
    or already quantized."""
    import onnx

    model = load_onnx(model_path)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and protobuf errors
        first = first_line(exc)
        raise InputError(f"model {model_path} is not a valid ONNX model ({first})") from None
    if not model.graph.node or not model.graph.input:
        raise InputError(f"model {model_path} has an empty graph; is the file truncated?")
    from .graph import quantized_ops

    found = quantized_ops(model)
    if found:
        ops = ", ".join(f"{n} {op}" for op, n in found.most_common(3))
        raise InputError(
            f"model {model_path} is already quantized ({ops}); "
            "pass the fp32 model from gradgroup export"
        )
    check_segmenter(model, model_path)
    return model


def quantizable_ops() -> set[str]:
    """Op types ONNX Runtime's quantizer knows (what ``quantize_static`` quantizes by default)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return set(QDQRegistry) | set(QLinearOpsRegistry)


def check_selection(
    graphs: Iterable, op_types: Iterable[str] | None, exclude: Iterable[str]
) -> None:
    """Refuse ``--op-types`` the model lacks or ORT cannot quantize, and unknown ``--exclude``.

    ``graphs`` are the model before and after :func:`prepare`: a node name from either is accepted
    (the report names nodes of the prepared graph).
    """
    nodes = [n for g in graphs for n in g.node]
    present, quantizable = {n.op_type for n in nodes}, quantizable_ops()
    for op in op_types or ():
        if op not in quantizable:
            hint = _close(op, quantizable)
            raise InputError(f"--op-types {op}: ONNX Runtime does not quantize {op!r} ops{hint}")
        if op not in present:
            has = ", ".join(sorted(present & quantizable))
            raise InputError(
                f"--op-types {op}: the model has no {op} node (its quantizable ops: {has})"
            )
    names = {n.name for n in nodes}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise InputError(
            f"--exclude {unknown[0]}{more}: no node of that name in the model"
            + _close(unknown[0], names)
        )


def excluded_nodes(graph, exclude: Iterable[str]) -> tuple[str, ...]:
    """``--exclude`` as node names of the prepared ``graph``: a node a rewrite replaced (e.g. a
    ConvTranspose made sub-pixel) stands for the nodes made from it, named ``<name>_...``;
    InputError for one that left nothing behind (the names are checked by ``check_selection``)."""
    names = [n.name for n in graph.node]
    present = set(names)
    found: list[str] = []
    for name in exclude:
        made = [name] if name in present else [n for n in names if n.startswith(f"{name}_")]
        if not made:
            raise InputError(
                f"--exclude {name}: the ORT rewrites removed that node and made none from it; "
                "pass --no-ort-rewrites to quantize the graph as exported"
            )
        if name not in present:
            log.info("--exclude %s: a rewrite replaced it; keeping %s in float", name,
                     ", ".join(made))  # fmt: skip
        found += made
    return tuple(dict.fromkeys(found))


def _close(name: str, choices: Iterable[str]) -> str:
    """'; did you mean ...?' with up to three close matches, or nothing."""
    close = difflib.get_close_matches(name, list(choices), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def prepare(model, workdir: Path, ort_rewrites: bool = False, skip: tuple[str, ...] = ()) -> Path:
    """Float rewrites for an unbroken int8 chain around ORT's ``quant_pre_process``.

    BN after ConvTranspose is folded first (ORT folds BN into Conv only); ``quant_pre_process``
    then runs shape inference and ORT's basic optimizations (Conv+BN folding); any BN left is
    turned into a 1x1 depthwise Conv so it quantizes. With ``ort_rewrites`` the exact float
    rewrites of :mod:`.ort_rewrites` that make ORT's int8 kernels faster run first (grouped 1x1
    convs with few groups become dense), less those named in ``skip``. Returns the prepared fp32
    model's path.
    """
    import onnx
    from onnxruntime.quantization import quant_pre_process

    from gradgroup.deploy.graph.core import drop_unused_initializers
    from gradgroup.deploy.graph.rewrites import ORT_FLOAT_REWRITES, apply_rewrites
    from gradgroup.deploy.graph.rewrites.quant import (
        bn_to_depthwise_conv,
        fold_bn_into_conv_transpose,
    )

    folded = fold_bn_into_conv_transpose(model)
    if folded:
        log.info("folded %d BatchNormalization node(s) into ConvTranspose", folded)
    if ort_rewrites:
        names = [n for n in ORT_FLOAT_REWRITES if n not in skip]
        for name, changed in apply_rewrites(model, names, stage="float").items():
            if changed:
                log.info("%s: %d node(s) rewritten for ORT's int8 kernels", name, changed)
        drop_unused_initializers(model)  # the weights the rewrites replaced
    raw, out = workdir / "fp32.onnx", workdir / "fp32.prep.onnx"
    onnx.save(model, str(raw))
    try:
        # Symbolic shape inference needs sympy, which only torch pulls in; gradgroup exports
        # static shapes, for which ONNX's own shape inference is enough.
        no_sympy = importlib.util.find_spec("sympy") is None
        if no_sympy:
            log.debug("sympy not installed: skipping symbolic shape inference")
        quant_pre_process(str(raw), str(out), skip_symbolic_shape=no_sympy)
    except Exception as exc:  # shape inference and ORT optimization raise assorted types
        first = first_line(exc)
        raise RunError(f"quantization pre-processing failed: {first}") from None
    prepped = onnx.load(str(out))
    converted = bn_to_depthwise_conv(prepped)
    if converted:
        log.info(
            "turned %d unfoldable BatchNormalization node(s) into 1x1 depthwise Conv", converted
        )
        onnx.save(prepped, str(out))
    return out
