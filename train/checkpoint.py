"""Checkpoints: written atomically, loaded without running code, enough to rebuild the model.

A checkpoint is a dict of tensors and plain data only (``torch.load(weights_only=True)``):

- ``model``: the state dict; ``model_args``: ``{"arch", "num_classes", "form", "converted"}`` so the
  same module tree can be rebuilt before loading it;
- ``classes``: class table dict; ``preprocess``: :class:`Preprocess` fields;
- ``data``: the dataset spec it was trained on, folders absolute (absent in older checkpoints and
  for models trained on datasets passed in by API: :func:`checkpoint_data` is then None);
- ``alpha``: current gradual-grouping alpha; ``epoch``, ``iteration``;
- trainer state (``optimizer``, ``scheduler``, ``rng``, ``config``, ``metrics``) where present.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradgroup.deploy.classes import CITYSCAPES, ClassTable
from gradgroup.deploy.errors import InputError, first_line
from gradgroup.deploy.fileio import atomic_path
from gradgroup.deploy.preprocess import Preprocess

from .grouping import (
    Form,
    convert_to_grouped,
    get_alpha,
    gradual_layers,
    grouped_early,
    set_alpha,
)
from .models import create_model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, then rename."""
    buffer = io.BytesIO()  # torch.save into a file turns a failed write into a RuntimeError
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); raises InputError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling corrupt bytes raises many types
        first = first_line(exc)
        raise InputError(
            f"checkpoint {path} is not a readable gradgroup checkpoint ({first})"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise InputError(
            f"checkpoint {path} has no 'model'/'model_args'; was it written by gradgroup train?"
        )
    args = ckpt["model_args"]
    if (
        not isinstance(ckpt["model"], dict)
        or not isinstance(args, dict)
        or not isinstance(args.get("arch"), str)
        or not isinstance(args.get("num_classes"), int)
    ):
        raise InputError(
            f"checkpoint {path} has a malformed 'model'/'model_args' (need a state dict and "
            "{'arch': str, 'num_classes': int, ...})"
        )
    return ckpt


def model_state(
    model: nn.Module,
    arch: str,
    classes: ClassTable = CITYSCAPES,
    preprocess: Preprocess | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """The model part of a checkpoint: weights plus what is needed to rebuild and deploy them
    (``data``: the dataset spec it was trained on, recorded when given)."""
    raw = getattr(model, "module", model)  # unwrap DDP
    form = getattr(raw, "form", Form.GROUPED)
    converted = Form(form) is Form.GRADUAL and not gradual_layers(raw)
    state = {
        "model": raw.state_dict(),
        "model_args": {
            "arch": arch,
            "num_classes": raw.num_classes,
            "form": Form(form).value,
            "converted": converted,
            "grouped": grouped_early(raw),
        },
        "classes": classes.to_dict(),
        "preprocess": asdict(preprocess or Preprocess()),
        "alpha": get_alpha(raw),
    }
    if data is not None:
        from gradgroup.deploy.datasets import absolute_spec

        state["data"] = absolute_spec(data)
    return state


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint holds (same form, converted or not) and load its weights."""
    args = ckpt["model_args"]
    model = create_model(args["arch"], args["num_classes"], args.get("form", "grouped"))
    if args.get("converted"):
        set_alpha(model, 0.0)
        convert_to_grouped(model)
    elif args.get("grouped"):
        _group_now(model, args["grouped"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise InputError(
            f"checkpoint weights do not fit {args['arch']!r}: "
            f"{_misfit(model.state_dict(), ckpt['model'])}"
        ) from None
    return model


def _compare(target: dict[str, Any], source: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """(tensors of ``source`` that fit ``target``, of another shape, missing, unused)."""
    fits = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    mismatched = {k: v for k, v in target.items() if k in source and k not in fits}
    missing = {k: v for k, v in target.items() if k not in source}
    unused = {k: v for k, v in source.items() if k not in target}
    return fits, mismatched, missing, unused


def _misfit(target: dict[str, Any], source: dict[str, Any]) -> str:
    """What of ``source`` does not fit ``target``, in one line."""
    fits, mismatched, missing, unused = _compare(target, source)
    parts = [f"{len(fits)} of {len(target)} tensors fit"]
    for label, names in (("missing", missing), ("of another shape", mismatched),
                         ("not in the model", unused)):  # fmt: skip
        if names:
            parts.append(f"{len(names)} {label} ({_names(tuple(names), 3)})")
    return ", ".join(parts)


@dataclass(frozen=True)
class InitReport:
    """What ``init_from`` took from a checkpoint: tensors loaded, and those that did not fit."""

    source: str
    loaded: int
    mismatched: tuple[str, ...]  # in both, different shapes: kept as initialised
    missing: tuple[str, ...]  # in the model only: kept as initialised
    unused: tuple[str, ...]  # in the checkpoint only
    grouped: tuple[str, ...] = ()  # gradual layers the checkpoint holds grouped: grouped now

    def summary(self) -> str:
        parts = [f"--init {self.source}: {self.loaded} tensors loaded"]
        if self.grouped:
            parts.append(
                f"{len(self.grouped)} layers already grouped in the checkpoint, trained grouped "
                f"from the start: {_names(self.grouped, 3)}"
            )
        for label, names in (("kept as initialised (shape differs)", self.mismatched),
                             ("kept as initialised (not in the checkpoint)", self.missing),
                             ("unused from the checkpoint", self.unused)):  # fmt: skip
            if names:
                parts.append(f"{len(names)} {label}: {_names(names)}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def _names(names: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def init_from(model: nn.Module, path: str | Path) -> InitReport:
    """Load the weights of checkpoint ``path`` into ``model`` wherever names and shapes agree.

    The paper's recipe starts gradual grouping from a trained dense network: a dense checkpoint
    (alpha = 1, or an architecture whose grouped layers are dense) loads exactly into the gradual
    form. Alpha buffers are schedule state and are never taken. Everything that does not fit is
    named in the report, never skipped silently.

    Raises:
        InputError: not a checkpoint, or not a single tensor of it fits ``model``.
    """
    ckpt = load_checkpoint(path)
    source = {k: v for k, v in ckpt["model"].items() if not k.endswith(".alpha")}
    if float(ckpt.get("alpha", 1.0)) not in (0.0, 1.0) and not ckpt["model_args"].get("converted"):
        raise InputError(
            f"--init {path}: its gradual layers are at alpha={float(ckpt['alpha']):.3g}, neither "
            "dense nor grouped; start from a dense checkpoint or a finished run's best.pt"
        )
    grouped = _grouped_in(model, source)
    _group_now(model, grouped)
    target = {k: v for k, v in model.state_dict().items() if not k.endswith(".alpha")}
    fits, mismatched, missing, unused = _compare(target, source)
    if not fits:
        raise InputError(
            f"--init {path}: no tensor of this {ckpt['model_args'].get('arch')!r} checkpoint "
            "fits the model being trained"
        )
    model.load_state_dict(fits, strict=False)
    return InitReport(
        source=str(path),
        loaded=len(fits),
        mismatched=tuple(mismatched),
        missing=tuple(missing),
        unused=tuple(unused),
        grouped=tuple(grouped),
    )


def _grouped_in(model: nn.Module, source: dict[str, Any]) -> list[str]:
    """Gradual layers of ``model`` whose weight ``source`` holds in grouped shape (a start that
    was grouped already, e.g. d-light's depthwise convs for dg4-light)."""
    names = []
    for name, layer in gradual_layers(model):
        weight = source.get(f"{name}.weight")
        o, i, *k = layer.weight.shape
        if weight is not None and tuple(weight.shape) == (o, i // layer.groups, *k):
            names.append(name)
    return names


def _group_now(model: nn.Module, names: list[str]) -> None:
    """Make the named gradual layers true grouped convs (alpha 0) before the rest decays."""
    wanted = set(names)
    for name, layer in gradual_layers(model):
        if name in wanted:
            layer.alpha.fill_(0.0)
    convert_to_grouped(model, names=wanted)


def checkpoint_classes(ckpt: dict[str, Any]) -> ClassTable:
    """The class table stored in a checkpoint (Cityscapes when absent)."""
    return ClassTable.from_dict(ckpt["classes"]) if "classes" in ckpt else CITYSCAPES


def checkpoint_data(ckpt: dict[str, Any]) -> str | None:
    """The dataset spec a checkpoint was trained on; None when it does not record one."""
    data = ckpt.get("data")
    return data if isinstance(data, str) and data else None


def checkpoint_preprocess(ckpt: dict[str, Any]) -> Preprocess:
    """The preprocessing stored in a checkpoint (defaults when absent)."""
    pre = ckpt.get("preprocess")
    if not pre:
        return Preprocess()
    return Preprocess.from_dict(pre)


def rng_states() -> dict[str, Any]:
    """Python, numpy, torch and CUDA RNG states as plain data (loadable with ``weights_only``)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` captured."""
    import random

    import numpy as np

    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
