"""Scene-pretrained weights shipped with the project (``weights/``, installed as
``gradgroup.weights``), and the tools that make and check them.

Each file is a tensors-only checkpoint (``model_state``: weights, model arguments, classes,
preprocessing; ``torch.load(weights_only=True)``) produced by ``gradgroup train`` on the
procedural scenes and packed by ``gradgroup weights pack``. ``manifest.json`` records for each file
its sha256, the exact commands that produced it and its mIoU on held-out scenes, which
``gradgroup weights check`` (and the test suite) re-measures.

The paper's recipe starts gradual grouping from a trained network with dense pointwise convs:
:func:`dense_start` names the shipped file a model starts from (``d-light.pt`` for every light
model: depthwise 3x1/1x3 convs, dense pointwise ones, so gradual grouping decays only the
pointwise convs). ``d-light-dense.pt`` is d-light with every conv dense (alpha = 1), the start
``d-light.pt`` was grouped from and the one ``bench/paper_claim.py`` compares from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import to_json, write_text_atomic

MANIFEST = "manifest.json"
EVAL_IMAGES = 50  # held-out validation scenes each file is scored on
EVAL_TOLERANCE = 0.01  # a re-measured mIoU may differ from the manifest by at most 1 point


@dataclass(frozen=True)
class ShippedWeights:
    """One entry of ``weights/manifest.json`` (mIoU as a fraction)."""

    name: str  # file name in weights/
    arch: str
    sha256: str
    bytes: int
    miou: float  # on EVAL_IMAGES validation scenes at ``size``
    size: tuple[int, int]
    commands: tuple[str, ...]  # what produced the file, in order
    iterations: int
    train_minutes: float
    machine: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ShippedWeights:
        return cls(**{**data, "size": tuple(data["size"]), "commands": tuple(data["commands"])})


def weights_dir() -> Path:
    """The folder the shipped weights live in (the source tree's ``weights/`` when installed -e)."""
    return Path(str(resources.files("gradgroup.weights")))


def manifest(folder: Path | None = None) -> list[ShippedWeights]:
    """The entries of ``manifest.json`` (empty when none is there)."""
    path = (folder or weights_dir()) / MANIFEST
    if not path.is_file():
        return []
    try:
        return [ShippedWeights.from_dict(e) for e in json.loads(path.read_text())["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a valid weights manifest ({exc})") from None


def dense_start(arch: str) -> str:
    """The dense architecture ``arch`` starts from: grouping removed (``dg4s-light`` ->
    ``d-light``), selective dense blocks dropped; ERFNet is its own."""
    return re.sub(r"-sel\d+", "", re.sub(r"^dg\d+s?", "d", arch))


def find_shipped(arch: str, folder: Path | None = None) -> Path | None:
    """The shipped start of ``arch``, ``<dense start>.pt`` (``d-light.pt`` for ``dg4-light``),
    or None when the project ships none. Other files of the same architecture (a differently
    trained form, a finished grouped model) are never picked as a start."""
    folder = folder or weights_dir()
    want = f"{dense_start(arch)}.pt"
    entry = next((e for e in manifest(folder) if e.name == want), None)
    return None if entry is None else folder / entry.name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def measure(path: Path, images: int = EVAL_IMAGES, progress: bool = False) -> float:
    """mIoU (fraction) of a weights file on the first ``images`` validation scenes."""
    from .evaluate import EvalConfig, evaluate_path

    return evaluate_path(path, EvalConfig(limit=images, device="cpu", progress=progress)).miou


def pack(
    run: Path, name: str, commands: tuple[str, ...], machine: str, folder: Path | None = None
) -> ShippedWeights:
    """Write ``run``'s final weights (``last.pt``) tensors-only as ``folder/name``, measure them
    and record them in the manifest (replacing an entry of the same name)."""
    from .checkpoint import checkpoint_preprocess, load_checkpoint, save_checkpoint

    folder = folder or weights_dir()
    ckpt = load_checkpoint(run / "last.pt")
    # A run continued from a shipped file adds its training; found before writing, since the
    # continuation may replace its own start (d-light.pt from d-light.pt).
    start = _shipped_start(ckpt, folder)
    keep = ("model", "model_args", "classes", "preprocess", "alpha")
    target = save_checkpoint(folder / name, {k: ckpt[k] for k in keep if k in ckpt})
    seconds = sum(r.get("seconds", 0.0) for r in ckpt.get("metrics", []))
    iterations = int(ckpt.get("iteration", 0))
    if start is not None and start.sha256 != sha256(target):  # (not a re-pack of this run)
        iterations += start.iterations
        seconds += 60 * start.train_minutes
    entry = ShippedWeights(
        name=name, arch=ckpt["model_args"]["arch"], sha256=sha256(target),
        bytes=target.stat().st_size, miou=round(measure(target), 5),
        size=checkpoint_preprocess(ckpt).size, commands=commands,
        iterations=iterations, train_minutes=round(seconds / 60, 1),
        machine=machine,
    )  # fmt: skip
    entries = [e for e in manifest(folder) if e.name != name] + [entry]
    text = to_json({"files": [e.to_dict() for e in entries]}, indent=2) + "\n"
    write_text_atomic(folder / MANIFEST, text)
    return entry


def _shipped_start(ckpt: dict, folder: Path) -> ShippedWeights | None:
    """The manifest entry of the shipped file a run started from (``--init``), if it did."""
    init = (ckpt.get("config") or {}).get("init")
    if not init:
        return None
    entries = manifest(folder)
    if Path(init).is_file():  # by content: the start may have been renamed since
        digest = sha256(Path(init))
        return next((e for e in entries if e.sha256 == digest), None)
    return next((e for e in entries if e.name == Path(init).name), None)


def check(folder: Path | None = None, progress: bool = False) -> list[tuple[ShippedWeights, float]]:
    """Re-measure every shipped file: (entry, measured mIoU). Raises InputError on a file that
    is missing, altered (sha256) or off its manifest mIoU by more than EVAL_TOLERANCE."""
    folder = folder or weights_dir()
    results = []
    for entry in manifest(folder):
        path = folder / entry.name
        if not path.is_file():
            raise InputError(f"{path} is listed in {MANIFEST} but missing")
        if sha256(path) != entry.sha256:
            raise InputError(f"{path} does not match the sha256 in {MANIFEST}")
        miou = measure(path, progress=progress)
        if abs(miou - entry.miou) > EVAL_TOLERANCE:
            raise InputError(
                f"{entry.name}: mIoU {100 * miou:.2f}% on {EVAL_IMAGES} scenes, the manifest says "
                f"{100 * entry.miou:.2f}%"
            )
        results.append((entry, miou))
    return results
