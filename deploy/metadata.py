"""The metadata every exported model carries in ONNX ``metadata_props``.

deploy never needs the training config: everything it must know about a model (classes, palette,
input size, preprocessing, architecture, alpha, training data) is read from here. Keys are prefixed
``gradgroup.`` and values are JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .classes import CITYSCAPES, ClassTable
from .errors import InputError
from .fileio import to_json
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

log = logging.getLogger(__name__)

PREFIX = "gradgroup."


@dataclass(frozen=True)
class ModelMeta:
    """What a model artifact says about itself.

    Attributes:
        arch: architecture name from the zoo (e.g. ``"dg4s-light"``).
        classes: class names and palette.
        preprocess: input size, mean/std, colour order, layout.
        input_dtype: ``"float32"`` (normalized input) or ``"uint8"`` (raw RGB, graph normalizes).
        output: ``"logits"`` (N, C, H, W) or ``"argmax"`` (N, 1, H, W) class ids.
        alpha: final gradual-grouping alpha (0.0 for a true grouped model).
        params, macs: counted at export time.
        precision: ``"fp32"`` or ``"int8"``.
        data: the labelled data it was trained on (a dataset spec, folders absolute); None: not
            recorded (older models), which data defaults treat as ``synthetic``.
        extra: anything else (checkpoint hash, version, mIoU, ...).
    """

    arch: str = "unknown"
    classes: ClassTable = CITYSCAPES
    preprocess: Preprocess = field(default_factory=Preprocess)
    input_dtype: str = "float32"
    output: str = "logits"
    alpha: float = 0.0
    params: int = 0
    macs: int = 0
    precision: str = "fp32"
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        """Serialize to ``{key: json}`` pairs for ``metadata_props``."""
        props = {
            "arch": self.arch,
            "classes": list(self.classes.names),
            "palette": [list(c) for c in self.classes.palette],
            "preprocess": asdict(self.preprocess),
            "input_dtype": self.input_dtype,
            "output": self.output,
            "alpha": self.alpha,
            "params": self.params,
            "macs": self.macs,
            "precision": self.precision,
            **({"data": self.data} if self.data is not None else {}),
            **self.extra,
        }
        return {PREFIX + k: to_json(v) for k, v in props.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMeta | None:
        """Parse ``metadata_props``; None when the model carries no gradgroup metadata."""
        data = {}
        for key, value in props.items():
            if key.startswith(PREFIX):
                try:
                    data[key[len(PREFIX) :]] = json.loads(value)
                except ValueError:
                    raise InputError(f"model metadata {key!r} is not valid JSON") from None
        if not data:
            return None
        try:
            classes = ClassTable.from_dict(
                {"names": data.pop("classes"), "palette": data.pop("palette")}
            )
            pre = data.pop("preprocess")
            pre = Preprocess.from_dict(pre)
        except (KeyError, TypeError) as exc:
            raise InputError(f"model metadata is incomplete ({exc})") from None
        known = {f.name for f in fields(cls)} - {"classes", "preprocess", "extra"}
        kwargs = {k: data.pop(k) for k in list(data) if k in known}
        return cls(classes=classes, preprocess=pre, extra=data, **kwargs)


def write_meta(model: Any, meta: ModelMeta) -> None:
    """Set ``meta`` into an ``onnx.ModelProto``'s metadata_props (replacing gradgroup keys)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in keep + sorted(meta.to_props().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_meta(model: Any, default_size: tuple[int, int] | None = None) -> ModelMeta:
    """Read gradgroup metadata from an ``onnx.ModelProto``.

    A model without it gets sensible defaults (Cityscapes classes, ImageNet mean/std, the input
    size from the graph or ``default_size``) and a warning.
    """
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    if meta is not None:
        return meta
    size = default_size or _graph_input_size(model) or (512, 1024)
    log.warning(
        "model has no gradgroup metadata; assuming Cityscapes classes, ImageNet mean/std, "
        "RGB NCHW input of %dx%d",
        *size,
    )
    return ModelMeta(
        preprocess=Preprocess(size[0], size[1], IMAGENET_MEAN, IMAGENET_STD),
        input_dtype=_graph_input_dtype(model),
    )


def _graph_input_size(model: Any) -> tuple[int, int] | None:
    """(H, W) of the first graph input when static and NCHW, else None."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value for d in dims]
    if len(values) == 4 and values[2] > 0 and values[3] > 0:
        return values[2], values[3]
    return None


def _graph_input_dtype(model: Any) -> str:
    elem = model.graph.input[0].type.tensor_type.elem_type
    return "uint8" if elem == 2 else "float32"  # onnx.TensorProto.UINT8 == 2
