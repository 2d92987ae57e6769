"""What int8 costs: fp32 vs int8 mIoU and argmax agreement, per-tensor SQNR, the max-drop loop.

The fp32 model is evaluated once and its class maps cached, so each int8 candidate of the
``max_drop`` loop costs one int8 pass over the evaluation frames. SQNR uses ONNX Runtime's
``qdq_loss_debug`` (augment both models to output every activation, run, match fp32 tensors to
their QDQ counterparts) one frame at a time, accumulating signal and noise power so memory stays
at one frame's activations.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gradgroup.deploy.calibset import CalibSet
from gradgroup.deploy.errors import InputError, MissingDependencyError, RunError
from gradgroup.deploy.evaluate import evaluate
from gradgroup.deploy.graph.core import Graph, load_onnx
from gradgroup.deploy.metadata import ModelMeta
from gradgroup.deploy.preprocess import resize_frame, resize_labels
from gradgroup.deploy.table import format_table

log = logging.getLogger(__name__)

# Suffix ORT's modify_model_output_intermediate_tensors gives each saved tensor output.
_SAVE_SUFFIX = "_ReshapedSavedOutput"


@dataclass(frozen=True)
class AccuracyReport:
    """fp32 vs int8 on the same frames: mIoU and pixel agreement as fractions (0..1)."""

    fp32_miou: float
    int8_miou: float
    agreement: float

    @property
    def drop(self) -> float:
        """mIoU the int8 model lost (a fraction: 0.01 is one mIoU point)."""
        return self.fp32_miou - self.int8_miou

    def to_dict(self) -> dict[str, float]:
        return {**{k: round(v, 6) for k, v in asdict(self).items()}, "drop": round(self.drop, 6)}


@dataclass(frozen=True)
class CalibAccuracy:
    """What calib measured and controlled: the report, its data and the ``max_drop`` outcome."""

    report: AccuracyReport
    eval_data: str
    eval_frames: int
    max_drop: float | None = None  # the budget (fraction), None: measured without control
    initial_drop: float | None = None  # the drop before layers were kept in float

    @property
    def max_drop_met(self) -> bool | None:
        return None if self.max_drop is None else self.report.drop <= self.max_drop

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form of calib's report (``accuracy`` in ``<model>.json``)."""
        out: dict[str, Any] = {**self.report.to_dict(), "eval_data": self.eval_data,
                               "eval_frames": self.eval_frames}  # fmt: skip
        if self.max_drop is not None:
            out |= {"max_drop": self.max_drop, "initial_drop": round(self.initial_drop or 0.0, 6),
                    "max_drop_met": self.max_drop_met}  # fmt: skip
        return out


def load_eval_frames(spec: str, meta: ModelMeta, frames: int, model: str) -> tuple[list, str]:
    """Labelled frames at the model's size: (rgb, labels) pairs and a description of the source.

    ``spec`` ``model`` is the val split of the data the model was trained on (``meta.data``).

    Raises:
        InputError: unreadable data, no frames, or another class table than ``model``'s.
    """
    try:
        from gradgroup.deploy.datasets import check_classes, open_dataset, resolve_data
    except ImportError as exc:
        raise MissingDependencyError(f"evaluation datasets are unavailable ({exc})") from None
    if frames < 1:
        raise InputError(f"--eval-frames {frames} must be >= 1")
    spec = resolve_data(spec, meta.data, "--eval-data")
    size = meta.preprocess.size
    dataset = open_dataset(spec, split="val", size=size, length=frames)
    check_classes(dataset, meta.classes, spec, model)
    pairs = []
    for i in range(min(frames, len(dataset))):
        sample = dataset[i]
        rgb = resize_frame(sample.image, meta.preprocess, frame_order="RGB")
        pairs.append((rgb, resize_labels(sample.labels, meta.preprocess)))
    if not pairs:
        raise InputError(f"evaluation data {spec!r} holds no labelled frames")
    return pairs, f"{spec} val ({len(pairs)} frames)"


class Evaluator:
    """Evaluates int8 candidates against an fp32 model on fixed labelled frames.

    Args:
        fp32_path: the fp32 ONNX model (evaluated once, class maps cached).
        meta: model metadata (classes, preprocessing).
        pairs: labelled frames at the model's size (:func:`load_eval_frames`).
        source: their description.
    """

    def __init__(self, fp32_path: str | Path, meta: ModelMeta, pairs: list, source: str) -> None:
        from gradgroup.deploy.runtime import Segmenter

        self.meta = meta
        self.pairs, self.source = pairs, source
        self.frames = len(self.pairs)
        self.num_classes = len(meta.classes.names)
        fp32 = Segmenter(fp32_path)
        self.reference: list[np.ndarray] = []

        def predict(rgb: np.ndarray) -> np.ndarray:
            pred = fp32.predict_rgb(rgb)
            self.reference.append(pred)
            return pred

        metrics = evaluate(
            predict,
            self.pairs,
            meta.preprocess,
            self.num_classes,
            total=self.frames,
            desc="eval fp32",
            progress=_progress(),
        )
        self.fp32_miou = metrics.miou

    def measure(self, int8_path: str | Path) -> AccuracyReport:
        """mIoU of an int8 model and its pixel agreement with the cached fp32 class maps."""
        from gradgroup.deploy.runtime import Segmenter

        int8 = Segmenter(int8_path)
        agree, total, index = 0, 0, iter(range(self.frames))

        def predict(rgb: np.ndarray) -> np.ndarray:
            nonlocal agree, total
            pred = int8.predict_rgb(rgb)
            ref = self.reference[next(index)]
            agree += int(np.count_nonzero(pred == ref))
            total += ref.size
            return pred

        metrics = evaluate(
            predict,
            self.pairs,
            self.meta.preprocess,
            self.num_classes,
            total=self.frames,
            desc="eval int8",
            progress=_progress(),
        )
        return AccuracyReport(self.fp32_miou, metrics.miou, agree / max(total, 1))


def _progress() -> bool:
    """Progress bars only when INFO messages are shown (``-q`` silences both)."""
    return log.isEnabledFor(logging.INFO)


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def tensor_sqnr(
    fp32_path: Path,
    int8_path: Path,
    calib: CalibSet,
    input_name: str,
    meta: ModelMeta,
    frames: int,
) -> list[dict[str, Any]]:
    """Per-tensor SQNR (dB) of the int8 model against fp32, worst local error first.

    ``qdq_sqnr`` compares a tensor just before its QuantizeLinear with just after its
    DequantizeLinear (the error this tensor's quantization adds by itself); ``model_sqnr``
    compares the int8 model's tensor with the fp32 model's (error accumulated up to here).
    A tensor its QDQ pair reproduces exactly has infinite SQNR (``null`` in the JSON report).
    """
    from onnxruntime.quantization.qdq_loss_debug import (
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    if frames < 1:
        return []
    producers = Graph(load_onnx(fp32_path)).producer
    # tensor -> [fp32 signal, model noise, pre-QDQ signal, QDQ noise], summed over frames
    power: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="gradgroup-sqnr-") as tmp:
        aug32, aug8 = Path(tmp) / "fp32.aug.onnx", Path(tmp) / "int8.aug.onnx"
        modify_model_output_intermediate_tensors(str(fp32_path), str(aug32))
        modify_model_output_intermediate_tensors(str(int8_path), str(aug8))
        # ORT's collect_activations builds a session per call; one session per model instead.
        run32, run8 = _activation_runner(aug32), _activation_runner(aug8)
        count = min(frames, len(calib))
        for i in tqdm(range(count), desc="sqnr", leave=False, disable=count < 2 or not _progress()):
            feed = {input_name: calib.model_input(i, meta.input_dtype)}
            for name, match in create_activation_matching(run8(feed), run32(feed)).items():
                if "pre_qdq" not in match or "post_qdq" not in match:
                    continue
                pre = np.asarray(match["pre_qdq"][0], np.float64)
                node = producers.get(name)
                if node is not None and node.op_type == "Relu":
                    # ORT drops a Relu before QDQ and lets the quantizer's clamp at 0 do its job:
                    # the tensor before QuantizeLinear is pre-activation. Compare like with like.
                    pre = np.maximum(pre, 0.0)
                post = np.asarray(match["post_qdq"][0], np.float64)
                acc = power.setdefault(name, [0.0, 0.0, 0.0, 0.0])
                acc[2] += float(np.sum(pre**2))
                acc[3] += float(np.sum((pre - post) ** 2))
                if "float" in match:
                    ref = np.asarray(match["float"][0], np.float64)
                    acc[0] += float(np.sum(ref**2))
                    acc[1] += float(np.sum((ref - post) ** 2))
    rows = []
    for name, (sig, mnoise, pre_sig, qnoise) in power.items():
        node = producers.get(name)
        rows.append(
            {
                "tensor": name,
                "node": node.name if node is not None else "",
                "op": node.op_type if node is not None else "input",
                "qdq_sqnr": round(_sqnr_db(pre_sig, qnoise), 3),
                "model_sqnr": round(_sqnr_db(sig, mnoise), 3) if sig else None,
            }
        )
    rows.sort(key=lambda r: r["qdq_sqnr"])
    return rows


def _activation_runner(augmented: Path) -> Callable[[dict], dict[str, list[np.ndarray]]]:
    """Run a model augmented by ``modify_model_output_intermediate_tensors``; outputs by tensor.

    Graph optimizations are off (as in ORT's ``collect_activations``) so every QDQ pair is still
    there to be read: the int8 model is simulated in float, QDQ by QDQ.
    """
    from gradgroup.deploy.session import open_session

    session = open_session(
        augmented, f"model {augmented}", graph_optimization="disabled", error=RunError
    )
    names = [o.name for o in session.get_outputs()]
    saved = [n[: -len(_SAVE_SUFFIX)] if n.endswith(_SAVE_SUFFIX) else None for n in names]

    def run(feed: dict) -> dict[str, list[np.ndarray]]:
        outputs = session.run(None, feed)
        return {name: [value] for name, value in zip(saved, outputs, strict=True) if name}

    return run


def keep_float_until(
    bench: Evaluator,
    report: AccuracyReport,
    sqnr: list[dict[str, Any]],
    max_drop: float,
    max_tries: int,
    exclude: tuple[str, ...],
    requantize: Callable[[tuple[str, ...]], Path],
    fp32_path: Path,
) -> tuple[AccuracyReport, tuple[str, ...], list[dict[str, Any]]]:
    """Keep the worst-SQNR tensors in float one at a time until the drop is within ``max_drop``
    (a fraction of mIoU, as the drop).

    Keeping tensor T in float excludes its producer and every consumer from quantization (ORT
    places a QDQ pair on T whenever any of them is quantized). A candidate that does not reduce
    the drop is reverted, so the float set only holds layers that paid for themselves.

    Returns:
        (final report, nodes kept in float, one history entry per try).
    """
    graph = Graph(load_onnx(fp32_path))
    users = {name: [n.name for n in nodes] for name, nodes in graph.consumers.items()}
    history: list[dict[str, Any]] = []
    best_path_exclude = tuple(exclude)
    log.info(
        "mIoU drop %.2f > --max-drop %.2f points: trying up to %d tensors in float, worst first",
        100 * report.drop,
        100 * max_drop,
        max_tries,
    )
    tried = 0
    for row in sqnr:
        if report.drop <= max_drop or tried >= max_tries:
            break
        nodes = {row["node"], *users.get(row["tensor"], [])} - {""} - set(best_path_exclude)
        if not nodes:
            continue
        tried += 1
        candidate = best_path_exclude + tuple(sorted(nodes))
        new = bench.measure(requantize(candidate))
        kept = new.drop < report.drop
        log.info(
            "keep float %d/%d: %s (SQNR %.1f dB, %d nodes) -> drop %.2f points%s",
            tried,
            max_tries,
            row["tensor"],
            row["qdq_sqnr"],
            len(nodes),
            100 * new.drop,
            "" if kept else " (no better, reverted)",
        )
        history.append(
            {
                "tensor": row["tensor"],
                "nodes": sorted(nodes),
                "qdq_sqnr": row["qdq_sqnr"],
                "drop": round(new.drop, 6),
                "kept": kept,
            }
        )
        if kept:
            report, best_path_exclude = new, candidate
    if history and not history[-1]["kept"]:
        requantize(best_path_exclude)  # the staged model must be the best one, not the last try
    if report.drop > max_drop:
        log.warning(
            "mIoU drop %.2f still above --max-drop %.2f points after %d tries; %d node(s) kept in "
            "float",
            100 * report.drop,
            100 * max_drop,
            tried,
            len(best_path_exclude),
        )
    return report, best_path_exclude, history


def format_report(report: AccuracyReport, sqnr: list[dict[str, Any]], worst: int = 8) -> str:
    """Accuracy table plus the worst tensors by SQNR."""
    acc = format_table(
        ["model", "mIoU %", "change (points)", "agreement with fp32"],
        [
            ["fp32", f"{100 * report.fp32_miou:.2f}", "", ""],
            [
                "int8",
                f"{100 * report.int8_miou:.2f}",
                f"{-100 * report.drop:+.2f}",
                f"{100 * report.agreement:.2f}%",
            ],  # fmt: skip
        ],
    )
    if not sqnr:
        return acc
    rows = [
        [
            r["tensor"],
            r["op"],
            f"{r['qdq_sqnr']:.1f}",
            "" if r["model_sqnr"] is None else f"{r['model_sqnr']:.1f}",
        ]
        for r in sqnr[:worst]
    ]
    return (
        acc
        + "\n\nworst tensors (SQNR dB)\n"
        + format_table(["tensor", "op", "own qdq", "vs fp32"], rows)
    )
