"""The board-side runtime: one ONNX Runtime session plus the model's own preprocessing.

``Segmenter`` is what a user's application embeds: it reads the model's metadata, preprocesses a
frame of any size through the shared preprocessing, runs ONNX Runtime and returns the class map at
the frame's size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .errors import InputError
from .graph.core import load_onnx
from .metadata import ModelMeta, read_meta
from .preprocess import check_frame, normalize, resize_frame, to_layout
from .session import PROVIDERS, open_session

if TYPE_CHECKING:
    from .prediction import Prediction

log = logging.getLogger(__name__)

# ORT optimizers that undo gradgroup's int8 rewrites for ORT CPU (deploy/graph/rewrites/ort.py):
# QDQ propagation moves the QuantizeLinear after the input MaxPool back in front of it, turning a
# 0.4 ms float pool into a 7 ms NCHW uint8 one (bench/NOTES.md). Disabled for models whose
# metadata says they were calibrated with those rewrites.
ORT_REWRITES_DISABLED_OPTIMIZERS = ("QDQPropagationTransformer",)


@dataclass
class Segmentation:
    """One segmented frame: class ids at the frame's size and per-stage times in ms."""

    class_map: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def disabled_optimizers(meta: ModelMeta) -> list[str]:
    """ORT optimizers to switch off for a model: those that undo its calibration's ORT rewrites."""
    quant = meta.extra.get("quantization")
    rewritten = isinstance(quant, dict) and bool(quant.get("ort_rewrites"))
    return list(ORT_REWRITES_DISABLED_OPTIMIZERS) if rewritten else []


class Segmenter:
    """ONNX Runtime segmentation model driven by its own metadata.

    Args:
        model_path: an ONNX file exported by gradgroup (others work with default metadata).
        provider: "cpu" (ORT's CPU provider), "tidl" (TI's ``TIDLExecutionProvider`` on the
            C7x/MMA, CPU for the rest; needs TI's onnxruntime build and compiled artifacts) or
            "openvino" (Intel's OpenVINO plugin for ORT, ``gradgroup[openvino]``; the whole graph
            or an error, never a silent CPU fallback). See :mod:`.session`.
        threads: intra-op threads (None: ORT's default).
        artifacts: TIDL artifacts folder (``artifacts_folder``) made by TIDL compilation, or
            the package holding it as ``artifacts/`` (``gradgroup calib --target tidl``).
        graph_optimization: ORT graph optimization level: "all", "extended", "basic", "disabled".
        optimized_model_path: where ORT saves the graph it actually runs (for inspection).
        tidl_options: further TIDL provider options by TI's names (``debug_level``, ``priority``,
            ``max_pre_empt_delay``, ``core_number``, ...); values are passed as given.
        spinning: whether ORT's intra-op threads busy-wait between kernels (None: ORT's default,
            on). Off is faster when other threads share the cores (bench/NOTES.md).
        session_config: further ORT session config entries (``add_session_config_entry``).
        ov_options: OpenVINO CPU properties by OpenVINO's names (``INFERENCE_PRECISION_HINT``,
            ``PERFORMANCE_HINT``, ``INFERENCE_NUM_THREADS``, ...); gradgroup's defaults are f32
            precision and the latency hint.

    A model saved through ``optimized_model_path`` loads with ``graph_optimization="disabled"``
    several times faster (no optimization at start-up) and runs at the same speed on the same
    machine; it is specific to that CPU's instruction set.

    Raises:
        InputError: missing/corrupt model, bad option, missing artifacts folder.
        MissingDependencyError: ``provider="tidl"`` on an onnxruntime without TIDL, or
            ``provider="openvino"`` without the plugin or without an Intel CPU.
    """

    def __init__(
        self,
        model_path: str | Path,
        provider: str = "cpu",
        threads: int | None = None,
        artifacts: str | Path | None = None,
        graph_optimization: str = "all",
        optimized_model_path: str | Path | None = None,
        tidl_options: dict[str, Any] | None = None,
        spinning: bool | None = None,
        session_config: dict[str, str] | None = None,
        ov_options: dict[str, Any] | None = None,
    ) -> None:
        if provider not in PROVIDERS:
            raise InputError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
        self.path = Path(model_path)
        self.provider = provider
        model = load_onnx(self.path)
        check_segmenter(model, self.path)
        self.meta: ModelMeta = read_meta(model)
        _check_meta_matches_graph(self.meta, model, self.path)
        extra = tidl_options if provider == "tidl" else ov_options
        if provider == "cpu" and (tidl_options or ov_options):
            log.warning("TIDL/OpenVINO options are ignored with provider 'cpu'")
            extra = None
        # TI's examples open the file by path; the others take the already-checked bytes.
        self.session = open_session(
            str(self.path) if provider == "tidl" else model.SerializeToString(),
            f"model {self.path}",
            provider=provider,
            threads=threads,
            graph_optimization=graph_optimization,
            artifacts=artifacts if provider == "tidl" else None,
            provider_options=extra,
            optimized_model_path=optimized_model_path,
            spinning=spinning,
            session_config=session_config,
            disabled_optimizers=disabled_optimizers(self.meta),
        )
        self.input_name = self.session.get_inputs()[0].name
        self.threads = threads

    @property
    def providers(self) -> list[str]:
        """Execution providers of the session, in priority order."""
        return self.session.get_providers()

    def ti_benchmark(self) -> dict[str, int] | None:
        """TIDL per-run counters of the last run (``get_TI_benchmark_data``), None off TIDL."""
        getter = getattr(self.session, "get_TI_benchmark_data", None)
        return dict(getter()) if getter is not None else None

    def prepare(self, rgb: np.ndarray, order: str = "RGB") -> np.ndarray:
        """uint8 ``order`` (RGB or BGR) image at model size -> the model's input tensor."""
        if self.meta.input_dtype == "uint8":
            return to_layout(rgb, self.meta.preprocess, order)
        return normalize(rgb, self.meta.preprocess, order)

    def class_ids(self, output: np.ndarray) -> np.ndarray:
        """Model output (logits or argmax) -> (H, W) uint8 class ids at model size."""
        if output.ndim == 3:  # argmax without keepdims: (N, H, W)
            return output[0].astype(np.uint8, copy=False)
        if self.meta.output == "argmax" or output.shape[1] == 1:
            return output[0, 0].astype(np.uint8, copy=False)
        return _argmax_channels(output[0])

    def predict_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB already at model size -> (H, W) uint8 class ids."""
        check_frame(rgb)
        if rgb.shape[:2] != self.meta.preprocess.size:
            h, w = self.meta.preprocess.size
            raise InputError(
                f"frame is {rgb.shape[0]}x{rgb.shape[1]}, predict_rgb needs the model size "
                f"{h}x{w}; call the Segmenter on the frame to resize it"
            )
        out = self.session.run(None, {self.input_name: self.prepare(rgb)})[0]
        return self.class_ids(out)

    def __call__(self, frame: np.ndarray, frame_order: str = "BGR") -> Segmentation:
        """Segment a frame of any size; the class map comes back at the frame's size."""
        spec = self.meta.preprocess
        # A BGR frame for a BGR model stays BGR: no BGR -> RGB -> BGR round trip.
        order = frame_order if frame_order == spec.color_order else "RGB"
        t0 = time.perf_counter()
        x = self.prepare(resize_frame(frame, spec, frame_order, order), order)  # checks the frame
        t1 = time.perf_counter()
        out = self.session.run(None, {self.input_name: x})[0]
        t2 = time.perf_counter()
        ids = self.class_ids(out)
        if ids.shape != frame.shape[:2]:
            ids = cv2.resize(ids, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        t3 = time.perf_counter()
        ms = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2}
        return Segmentation(ids, {k: v * 1000.0 for k, v in ms.items()})

    def predict(self, source: Any, max_frames: int | None = None) -> Iterator[Prediction]:
        """Segment an image file, a folder (with its sub-folders), a video, a stream, an open
        FrameSource or one BGR array, image by image.

        Yields:
            :class:`.prediction.Prediction` per readable image: ``class_map`` at the image's
            size, ``class_names``, ``colorize()``, ``overlay()``, ``save(path, format)``,
            ``to_dict()``. Unreadable images are warned about and left out.

        Raises:
            InputError: the source does not exist or has no end and no ``max_frames``.
        """
        from .predict import iter_predictions

        yield from iter_predictions(self, source, max_frames)


def _argmax_channels(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) uint8 argmax, first maximum on ties (same as ``argmax(0)``).

    A running maximum over channel planes touches contiguous memory only; numpy's argmax over
    the leading axis is about 2x slower on a (19, 256, 512) output, which is the post-processing
    budget of a whole frame.
    """
    best = logits[0].copy()
    ids = np.zeros(logits.shape[1:], np.uint8)
    for k in range(1, logits.shape[0]):
        np.putmask(ids, logits[k] > best, k)
        np.maximum(best, logits[k], out=best)
    return ids


def check_segmenter(model: Any, path: str | Path) -> None:
    """Refuse a graph that is not an image segmenter, before any work is done with it.

    A segmenter has one 4-D NCHW or NHWC image input with 1 or 3 channels (float32 or uint8)
    and a first output of [N, C, H, W] logits or [N, H, W] class ids at the input's H x W.
    Unknown (symbolic) dimensions match anything. Every model loader calls this.
    """
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    refuse = f"model {path} is not a segmentation model"
    want_in = "expected one NCHW or NHWC image input with 1 or 3 channels"
    if len(inputs) != 1:
        raise InputError(f"{refuse}: it has {len(inputs)} inputs; {want_in}")
    dims = _dims(inputs[0]) or []
    sizes = _image_sizes(dims)
    if not sizes:
        raise InputError(f"{refuse}: its input {inputs[0].name!r} is {_shape(dims)}; {want_in}")
    if inputs[0].type.tensor_type.elem_type not in (1, 2):  # onnx.TensorProto.FLOAT, UINT8
        raise InputError(f"{refuse}: its input {inputs[0].name!r} is neither float32 nor uint8")
    output = model.graph.output[0]
    out = _dims(output)
    if out is None:  # no declared shape: infer it
        import onnx

        out = _dims(onnx.shape_inference.infer_shapes(model).graph.output[0])
    if out is None:
        return
    if len(out) not in (3, 4) or not any(_same(out[-2:], hw) for hw in sizes):
        h, w = (v or "?" for v in sizes[0])
        raise InputError(
            f"{refuse}: its output {output.name!r} is {_shape(out)}; expected [N, C, {h}, {w}] "
            f"logits or [N, {h}, {w}] class ids at the input's resolution"
        )


def _dims(value: Any) -> list[int] | None:
    """Dimensions of a graph input/output (0: unknown), None when no shape is declared."""
    t = value.type.tensor_type
    return [d.dim_value for d in t.shape.dim] if t.HasField("shape") else None


def _image_sizes(dims: list[int]) -> list[tuple[int, int]]:
    """(H, W) of a 4-D image input for each layout (NCHW, NHWC) its channel count fits."""
    if len(dims) != 4:
        return []
    _, a, b, c = dims
    return [hw for ch, hw in ((a, (b, c)), (c, (a, b))) if ch in (0, 1, 3)]


def _same(got: list[int], want: tuple[int, int]) -> bool:
    return all(g == w or not g or not w for g, w in zip(got, want, strict=True))


def _shape(dims: list[int]) -> str:
    return "[" + ", ".join(str(d) if d else "?" for d in dims) + "]"


def _check_meta_matches_graph(meta: ModelMeta, model: Any, path: Path) -> None:
    """Refuse a model whose metadata input size/dtype contradicts its graph input."""
    t = model.graph.input[0].type.tensor_type
    dims = [d.dim_value for d in t.shape.dim]
    spec = meta.preprocess
    want = (spec.height, spec.width)
    got = None
    if len(dims) == 4:
        got = (dims[2], dims[3]) if spec.layout == "NCHW" else (dims[1], dims[2])
    if got and all(got) and tuple(got) != want:
        raise InputError(
            f"model {path}: metadata says input {want[0]}x{want[1]} but the graph input is "
            f"{got[0]}x{got[1]}; re-export the model"
        )
    graph_dtype = "uint8" if t.elem_type == 2 else "float32" if t.elem_type == 1 else None
    if graph_dtype and graph_dtype != meta.input_dtype:
        raise InputError(
            f"model {path}: metadata says {meta.input_dtype} input but the graph takes "
            f"{graph_dtype}; re-export the model"
        )
