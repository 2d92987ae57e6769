"""TIDL output in TI's layout: ``artifacts/``, ``model/<name>.onnx`` and ``param.yaml``.

TI's tools package a compiled model this way (edgeai-tidl-tools ``common_utils.py``
``gen_param_yaml``, edgeai-benchmark's run folders and ``run_package.py``), and the board apps
(edgeai-gst-apps through edgeai-dl-inferer) read ``param.yaml`` from the folder to find the
model, its artifacts and its pre- and post-processing. The keys written are those of
edgeai-benchmark's ``param_segmentation_onnx.yaml`` and ``param_template_package.yaml``.
YAML is written by a small emitter of its own (PyYAML is not a dependency); any YAML 1.1 or 1.2
parser reads it back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import check_writable, fsync_path
from gradgroup.deploy.metadata import ModelMeta
from gradgroup.deploy.session import TIDL_ARTIFACTS_DIR, TIDL_MODEL_DIR, TIDL_PARAM_YAML

# param.yaml's session.target_device, by edgeai-benchmark's names (constants.py TARGET_DEVICE_*).
TARGET_DEVICES = {"tda4vm": "TDA4VM", "am62a": "AM62A", "am67a": "AM67A", "am68a": "AM68A",
                  "am69a": "AM69A"}  # fmt: skip
# Runtime options that name this machine's paths: no use on the board, left out of param.yaml.
LOCAL_OPTIONS = ("tidl_tools_path", "artifacts_folder")


def param_dict(
    model: Any, meta: ModelMeta, model_name: str, soc: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """``param.yaml``'s content for a gradgroup segmentation model compiled for ``soc``.

    A uint8-input model normalizes inside its graph: ``input_optimization: true`` with null
    ``input_mean``/``input_scale``, as TI writes once mean and scale are absorbed into the model.
    A float32-input model leaves normalization to the board: ``input_mean`` and ``input_scale``
    (``1 / std``), in the model's channel order.
    """
    spec = meta.preprocess
    size = [spec.height, spec.width]  # TI's resize/crop lists are [height, width]
    folded = meta.input_dtype == "uint8"
    mean = [float(m) for m in spec.mean]
    scale = [round(1.0 / s, 9) for s in spec.std]
    if spec.color_order == "BGR":  # metadata holds RGB statistics; TI applies them per channel
        mean, scale = mean[::-1], scale[::-1]
    return {
        "task_type": "segmentation",
        "preprocess": {
            "add_flip_image": False,
            "crop": size,
            "data_layout": spec.layout,
            "pad_color": 0,
            "resize": size,
            "resize_with_pad": False,
            "reverse_channels": spec.color_order == "BGR",  # TI feeds RGB unless reversed
        },
        "session": {
            "artifacts_folder": TIDL_ARTIFACTS_DIR,
            "model_folder": TIDL_MODEL_DIR,
            "model_path": f"{TIDL_MODEL_DIR}/{model_name}",
            "session_name": "onnxrt",
            "input_data_layout": spec.layout,
            "input_mean": None if folded else mean,
            "input_scale": None if folded else scale,
            "input_optimization": folded,
            "input_details": [_tensor_details(v) for v in _graph_inputs(model)],
            "output_details": [_tensor_details(v) for v in model.graph.output],
            "target_device": TARGET_DEVICES[soc],
            "runtime_options": {k: v for k, v in options.items() if k not in LOCAL_OPTIONS},
        },
        "postprocess": {
            "data_layout": spec.layout,
            "with_argmax": meta.output != "argmax",  # logits need the board's argmax
        },
    }


def _graph_inputs(model: Any) -> list[Any]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _tensor_details(value: Any) -> dict[str, Any]:
    """name, shape and ORT type string (``tensor(float)``) of a graph input or output."""
    import onnx

    t = value.type.tensor_type
    shape = [d.dim_value or d.dim_param or None for d in t.shape.dim]
    kind = onnx.TensorProto.DataType.Name(t.elem_type).lower()
    return {"name": value.name, "shape": shape, "type": f"tensor({kind})"}


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.()/+-]*")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)  # finite numbers only: TI's options and the model's numbers
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)  # a double-quoted YAML scalar


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def _block(data: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        head = f"{pad}{_scalar(key)}:"
        if _is_scalar(value):
            lines.append(f"{head} {_scalar(value)}")
        elif isinstance(value, Mapping):
            lines += [f"{head} {{}}"] if not value else [head, *_block(value, indent + 2)]
        elif all(_is_scalar(v) for v in value):
            lines.append(f"{head} [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(head)
            for item in value:
                if not isinstance(item, Mapping) or not item:
                    raise TypeError(f"to_yaml: list items must be scalars or mappings ({key})")
                first, *rest = _block(item, indent + 2)
                lines += [f"{pad}- {first[indent + 2 :]}", *rest]
    return lines


def to_yaml(data: Mapping[str, Any]) -> str:
    """Nested mappings, lists and scalars as block-style YAML (lists of scalars in flow style)."""
    return "\n".join(_block(data, 0)) + "\n"


def check_package_out(out: Path) -> None:
    """Fail before compiling when ``out`` cannot become the package folder.

    It may be new, empty, or a previous package (``param.yaml`` or ``artifacts/``) or bare TIDL
    artifacts folder, which the compile replaces; any other folder is refused, so a mistyped
    ``--out`` never deletes unrelated files.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the TIDL package")
    if out.is_dir() and any(out.iterdir()) and not _replaceable(out):
        raise InputError(
            f"--out {out} is a folder holding other files, not a TIDL package; give a new or "
            "empty folder (the compile replaces it whole)"
        )
    check_writable(out, "--out", folder=True)
    if out.exists():  # replacing it renames in its parent
        check_writable(out.parent, "--out", folder=True)


def _replaceable(folder: Path) -> bool:
    """A previous package, or a bare artifacts folder (TI's allowedNode.txt, *_tidl_net.bin)."""
    return (
        (folder / TIDL_PARAM_YAML).is_file()
        or (folder / TIDL_ARTIFACTS_DIR).is_dir()
        or (folder / "allowedNode.txt").is_file()
        or any(folder.glob("*tidl_net.bin"))
    )


def write_package(
    staging: Path, model_path: Path, model: Any, meta: ModelMeta, soc: str, options: Mapping
) -> None:
    """Add ``model/<name>`` (a copy of the compiled model) and ``param.yaml`` beside the
    ``artifacts/`` the compile wrote into ``staging``; both are fsynced."""
    model_dir = staging / TIDL_MODEL_DIR
    model_dir.mkdir()
    copy = model_dir / model_path.name
    shutil.copyfile(model_path, copy)
    param = staging / TIDL_PARAM_YAML
    param.write_text(to_yaml(param_dict(model, meta, model_path.name, soc, options)))
    for path in (copy, param):
        os.chmod(path, 0o644)
        fsync_path(path)


def replace_folder(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder onto ``out``; an old ``out`` is removed only after
    the new one is in place (restored when the move fails)."""
    os.chmod(staging, 0o755)  # mkdtemp makes 0700 folders: packages are copied to boards
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
        os.replace(out, old)  # a folder renames onto an empty one
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    fsync_path(out.parent, folder=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
