"""What each pipeline stage hands the next: one frozen result type per stage.

Every stage result lists the files it made (``artifacts``, so a re-run can tell whether it can be
reused) and round-trips through ``OUT/state.json`` with ``to_dict``/``from_dict``. ``from_dict``
raises ``StateError`` when an entry no longer matches its type (a field renamed or missing), so
the pipeline runs that stage again instead of reading wrong data. Keys the type does not know are
ignored, which keeps state written by earlier versions readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradgroup.deploy.bench import SystemInfo


class StateError(ValueError):
    """A ``state.json`` entry that does not parse as its stage's result type."""


def _pick(cls: type, data: Any) -> dict[str, Any]:
    """The fields of dataclass ``cls`` from ``data``, or StateError naming what is missing."""
    if not isinstance(data, Mapping):
        raise StateError(f"{cls.__name__}: expected an object, found {type(data).__name__}")
    missing = [f.name for f in fields(cls) if f.name not in data]
    if missing:
        raise StateError(f"{cls.__name__} lacks {', '.join(missing)}")
    return {f.name: data[f.name] for f in fields(cls)}


class _Record:
    """A result whose fields are plain data: ``asdict`` out, ``_pick`` (checked) in."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        return cls(**_pick(cls, data))


def _per_model(data: Any, item: type) -> dict[str, Any]:
    """``{arch: item.from_dict(entry)}`` from a JSON object keyed by architecture."""
    if not isinstance(data, Mapping):
        raise StateError(f"models of {item.__name__}: expected an object")
    return {arch: item.from_dict(entry) for arch, entry in data.items()}


@dataclass(frozen=True)
class TrainedRun(_Record):
    """One trained model: its checkpoint and how training went (mIoU as a fraction)."""

    schedule: str
    init: str | None
    checkpoint: str
    miou: float | None
    alpha: float
    iterations: int
    seconds: float
    seconds_per_iteration: float
    status: str


@dataclass(frozen=True)
class TrainStage:
    """The ``train`` stage: one run per architecture, efficient model first."""

    runs: dict[str, TrainedRun]

    @property
    def artifacts(self) -> list[str]:
        return [r.checkpoint for r in self.runs.values()]

    def to_dict(self) -> dict[str, Any]:
        runs = {arch: r.to_dict() for arch, r in self.runs.items()}
        return {"runs": runs, "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, data: Any) -> TrainStage:
        return cls(runs=_per_model(_pick(cls, data)["runs"], TrainedRun))


@dataclass(frozen=True)
class ExportedModel(_Record):
    """One checkpoint's ONNX forms: ORT (+ calibration set), TIDL-legal, deployment size."""

    onnx: str
    calib_set: str
    tidl_onnx: str
    tidl_unsupported: int
    tidl_unverified: int
    deploy_onnx: str
    deploy_calib_set: str
    grouped_convs: int
    params: int
    macs: int
    deploy_macs: int


@dataclass(frozen=True)
class ExportStage:
    """The ``export`` stage: one exported model per architecture."""

    models: dict[str, ExportedModel]

    @property
    def artifacts(self) -> list[str]:
        return [p for m in self.models.values() for p in (m.onnx, m.tidl_onnx, m.deploy_onnx)]

    def to_dict(self) -> dict[str, Any]:
        models = {arch: m.to_dict() for arch, m in self.models.items()}
        return {"models": models, "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, data: Any) -> ExportStage:
        return cls(models=_per_model(_pick(cls, data)["models"], ExportedModel))


@dataclass(frozen=True)
class Accuracy(_Record):
    """fp32 vs int8 on the held-out scenes, as calib measures it; fractions (0..1)."""

    fp32_miou: float
    int8_miou: float
    drop: float
    agreement: float

    def __post_init__(self) -> None:
        # state.json written before the fractions (percent, agreement ~97) must not be read
        # as fractions: it no longer parses, and the stage runs again.
        if not all(-1.0 <= v <= 1.0 for v in (self.fp32_miou, self.int8_miou, self.agreement)):
            raise ValueError("accuracy in percent (an older state.json); expected fractions")


@dataclass(frozen=True)
class QuantizedModel:
    """One model's int8 forms, the accuracy they cost and the layers kept in float."""

    int8_onnx: str
    deploy_int8_onnx: str
    accuracy: Accuracy | None
    float_nodes: tuple[str, ...]
    report: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["float_nodes"] = list(self.float_nodes)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> QuantizedModel:
        picked = _pick(cls, data)
        acc = picked["accuracy"]
        picked["accuracy"] = None if acc is None else Accuracy.from_dict(acc)
        picked["float_nodes"] = tuple(picked["float_nodes"])
        return cls(**picked)


@dataclass(frozen=True)
class CalibStage:
    """The ``calib`` stage: one quantized model per architecture."""

    models: dict[str, QuantizedModel]

    @property
    def artifacts(self) -> list[str]:
        return [p for m in self.models.values() for p in (m.int8_onnx, m.deploy_int8_onnx)]

    def to_dict(self) -> dict[str, Any]:
        models = {arch: m.to_dict() for arch, m in self.models.items()}
        return {"models": models, "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, data: Any) -> CalibStage:
        return cls(models=_per_model(_pick(cls, data)["models"], QuantizedModel))


@dataclass(frozen=True)
class BenchSummary:
    """One benchmarked model (an architecture at one precision) as the report shows it."""

    model: str
    precision: str
    path: str
    size: tuple[int, int]
    params: int
    macs: int
    p50_ms: float
    p99_ms: float
    fps: float
    frame_p99_ms: float
    meets_budget: bool
    energy_mj: float
    energy_label: str
    file_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: Any) -> BenchSummary:
        picked = _pick(cls, data)
        return cls(**{**picked, "size": tuple(picked["size"])})


@dataclass(frozen=True)
class BenchTable:
    """One benchmark run (model size or deployment size): its files and rows in report order."""

    json: str
    markdown: str
    plot: str | None
    rows: tuple[BenchSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, data: Any) -> BenchTable:
        picked = _pick(cls, data)
        return cls(**{**picked, "rows": tuple(BenchSummary.from_dict(r) for r in picked["rows"])})


@dataclass(frozen=True)
class BenchStage:
    """The ``bench`` stage: tables ``model`` and ``deploy``, and the machine they ran on."""

    tables: dict[str, BenchTable]
    system: SystemInfo

    @property
    def artifacts(self) -> list[str]:
        return [t.json for t in self.tables.values()]

    def to_dict(self) -> dict[str, Any]:
        tables = {name: t.to_dict() for name, t in self.tables.items()}
        return {"tables": tables, "system": asdict(self.system), "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, data: Any) -> BenchStage:
        from gradgroup.deploy.bench import SystemInfo

        picked = _pick(cls, data)
        tables = picked["tables"]
        if not isinstance(tables, Mapping) or {"model", "deploy"} - set(tables):
            raise StateError("BenchStage: tables must hold 'model' and 'deploy'")
        return cls(
            tables={name: BenchTable.from_dict(t) for name, t in tables.items()},
            system=SystemInfo(**_pick(SystemInfo, picked["system"])),
        )


@dataclass(frozen=True)
class DemoVideo(_Record):
    """The ``demo`` stage: the annotated drive and how it kept to the budget."""

    out: str
    frames: int
    fps: float
    budget_misses: int

    @property
    def artifacts(self) -> list[str]:
        return [self.out]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "artifacts": self.artifacts}


@dataclass(frozen=True)
class ReportFiles(_Record):
    """The ``report`` stage: where the report went and its model rows (report.json's form)."""

    report_md: str
    report_json: str
    rows: list[dict[str, Any]]

    @property
    def artifacts(self) -> list[str]:
        return [self.report_md, self.report_json]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "artifacts": self.artifacts}


StageResult = TrainStage | ExportStage | CalibStage | BenchStage | DemoVideo | ReportFiles

STAGE_TYPES: dict[str, type[StageResult]] = {
    "train": TrainStage,
    "export": ExportStage,
    "calib": CalibStage,
    "bench": BenchStage,
    "demo": DemoVideo,
    "report": ReportFiles,
}


@dataclass
class Results:
    """The stages finished so far, filled in pipeline order; each stage reads the earlier ones."""

    train: TrainStage | None = None
    export: ExportStage | None = None
    calib: CalibStage | None = None
    bench: BenchStage | None = None
    demo: DemoVideo | None = None
    report: ReportFiles | None = None
