"""Fit and cross-validate the SoC latency model on TI's published TDA4VM inference times.

``fit_report(csv)`` reads the published rows (``bench/ti_tda4vm_latency.csv``, a copy of
``shared/ti-published/tda4vm_latency.csv``), builds each model's layers
(:mod:`gradgroup.deploy.reference_nets`), fits the two free parameters of
:mod:`gradgroup.deploy.estimate` and reports

- the in-sample error (every row, parameters fitted on all models),
- the leave-one-model-out error: each model's rows are predicted with parameters fitted on the
  other models only, so no row is used to tune the parameters that predict it,
- the noise floor of the data: how far a model's own published values lie from their geometric
  mean (the same model moves by up to ~40 % across SDK versions),
- a baseline to beat: time = a + GMACs / b (two parameters, fitted and cross-validated alike).

Each model counts once in the fit (its target is the geometric mean of its rows); the loss is the
squared log error, so a 2 ms and a 40 ms model weigh alike. Errors are |estimate - published| /
published per row. Torch-free and numpy-only (a small Nelder-Mead; no scipy).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .estimate import SOCS, Params, Terms, combine, layer_terms
from .reference_nets import reference_layers

# The CSV's model names -> reference builder (deploy/reference_nets.py).
MODEL_KEYS = {
    "mobilenet_v2_lite_tv": "mobilenet_v2",
    "mobilenet_v2_lite (torchvision mobilenet_v2_tv)": "mobilenet_v2",
    "mobilenet_v3_large_lite_tv": "mobilenet_v3_large_lite",
    "mobilenet_v3_small_lite_tv": "mobilenet_v3_small_lite",
    "regnet_x_400mf (torchvision)": "regnetx_400mf",
    "regnet_x_800mf (torchvision)": "regnetx_800mf",
    "regnet_x_1_6gf_tv (torchvision)": "regnetx_1.6gf",
    "ssd_mobilenetv2_lite_mmdet": "ssd_mobilenetv2_lite",
    "ssd_mobilenetv2_fpn_lite_mmdet": "ssd_mobilenetv2_fpn_lite",
    "ssd_regnetx_200mf_fpn_bgr_lite_mmdet": "ssd_regnetx_200mf_fpn",
    "ssd_regnetx_800mf_fpn_bgr_lite_mmdet": "ssd_regnetx_800mf_fpn",
    "ssd_regnetx_1p6gf_fpn_bgr_lite_mmdet": "ssd_regnetx_1.6gf_fpn",
    "yolox_nano_lite (depthwise=False)": "yolox_nano_lite",
    "yolox_tiny_lite": "yolox_tiny_lite",
    "yolox_s_lite": "yolox_s_lite",
    "ONR-OD-8220-yolox-s-lite-mmdet-coco-640x640": "yolox_s_lite",
    "yolox_m_lite": "yolox_m_lite",
    "yolov5s6_640_ti_lite": "yolov5s6_lite",
    "yolov5s6_384_ti_lite": "yolov5s6_lite",
    "yolov5m6_640_ti_lite": "yolov5m6_lite",
    "yolov5l6_640_ti_lite": "yolov5l6_lite",
    "ONR-CL-6150-mobileNetV2-1p4-qat": "mobilenet_v2_1.4",
    "ONR-CL-6158-mobileNetV2-1p4-qat": "mobilenet_v2_1.4",
    "TFL-CL-0000-mobileNetV1-mlperf": "mobilenet_v1",
    "ONR-CL-6360-regNetx-200mf": "regnetx_200mf",
}


@dataclass(frozen=True)
class Row:
    """One published TDA4VM time and the model it belongs to."""

    name: str  # the CSV's model_name
    key: str  # reference builder
    size: tuple[int, int]  # (H, W)
    family: str
    gmacs: float
    ms: float
    source: str

    @property
    def model(self) -> str:
        """The model a row belongs to: builder and input size (rows of one model share it)."""
        return f"{self.key}@{self.size[0]}x{self.size[1]}"


@dataclass
class FitReport:
    """Fit, cross-validation and noise floor (percent errors are per published row)."""

    params: Params
    rows: list[Row]
    fit_ms: dict[str, float]  # model -> estimate with the parameters fitted on all models
    cv_ms: dict[str, float]  # model -> estimate with parameters fitted without it
    cv_params: dict[str, Params]
    notes: dict[str, str]  # model -> how its layers were obtained
    baseline_cv_ms: dict[str, float]  # model -> a + GMACs / b fitted without it
    skipped: list[str] = field(default_factory=list)  # rows without GMACs (no model to build)

    def errors(self, which: str = "cv") -> np.ndarray:
        """|estimate - published| / published in % per row ("cv" or "fit")."""
        table = {"cv": self.cv_ms, "fit": self.fit_ms, "baseline": self.baseline_cv_ms}[which]
        return np.array([abs(table[r.model] - r.ms) / r.ms * 100 for r in self.rows])

    def noise(self) -> np.ndarray:
        """% distance of each row from its model's geometric-mean time (models with 2+ rows)."""
        out = []
        for rows in self.by_model().values():
            if len(rows) > 1:
                mean = math.exp(np.mean([math.log(r.ms) for r in rows]))
                out += [abs(r.ms - mean) / mean * 100 for r in rows]
        return np.array(out)

    def by_model(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        for r in self.rows:
            out.setdefault(r.model, []).append(r)
        return out

    def summary(self) -> dict[str, float]:
        """Median and 90th percentile of the cv, fit, baseline (cv) and noise-floor errors."""
        out = {}
        errors = {k: self.errors(k) for k in ("cv", "fit", "baseline")}
        for label, e in (*errors.items(), ("noise", self.noise())):
            out[f"{label}_median_pct"] = float(np.median(e))
            out[f"{label}_p90_pct"] = float(np.percentile(e, 90))
        return out

    def by_family(self) -> dict[str, dict[str, float]]:
        """Per family: rows, models, cv median and max % error."""
        cv = self.errors("cv")
        out = {}
        for fam in sorted({r.family for r in self.rows}):
            e = cv[[r.family == fam for r in self.rows]]
            models = {r.model for r in self.rows if r.family == fam}
            out[fam] = {
                "rows": len(e),
                "models": len(models),
                "cv_median_pct": float(np.median(e)),
                "cv_p90_pct": float(np.percentile(e, 90)),
                "cv_max_pct": float(e.max()),
            }
        return out


def load_rows(path: str | Path) -> tuple[list[Row], list[str]]:
    """TDA4VM rows with GMACs (and a reference builder); returns (rows, skipped names)."""
    try:
        with open(path, newline="") as f:
            records = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"published-latency CSV {path}: {exc.strerror or exc}") from None
    rows, skipped = [], []
    for rec in records:
        try:
            name, gmacs, ms = rec["model_name"], rec["gmacs"], float(rec["infer_time_ms"])
            h, w = (int(v) for v in rec["input_size"].lower().split("x"))
        except (KeyError, ValueError, AttributeError):
            raise InputError(f"{path}: row {rec} lacks model_name/gmacs/infer_time_ms") from None
        if not gmacs or name not in MODEL_KEYS:
            skipped.append(name)
            continue
        where = rec.get("source_repo_or_url") or ""
        when = rec.get("date_last") or rec.get("notes") or ""
        family = rec.get("family", "")
        rows.append(
            Row(name, MODEL_KEYS[name], (h, w), family, float(gmacs), ms, f"{where} {when}")
        )
    if not rows:
        raise InputError(f"{path} holds no TDA4VM row with GMACs")
    return rows, skipped


def _to_params(x: np.ndarray) -> Params:
    """Unconstrained (x0, x1) -> efficiency through a logistic, overhead through exp."""
    return Params(mma_efficiency=float(1 / (1 + np.exp(-x[0]))),
                  layer_overhead_us=float(np.exp(x[1])))  # fmt: skip


def _nelder_mead(f, x0: np.ndarray, step: float = 0.5, iters: int = 600) -> np.ndarray:
    """Minimize f from x0 (standard reflection / expansion / contraction / shrink)."""
    simplex = [x0] + [x0 + step * e for e in np.eye(len(x0))]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < 1e-10:
            break
        centre = np.mean(simplex[:-1], axis=0)
        reflected = centre + (centre - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centre + 2 * (centre - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centre + 0.5 * (simplex[-1] - centre)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                simplex = [simplex[0] + 0.5 * (x - simplex[0]) for x in simplex]
                values = [f(x) for x in simplex]
    return simplex[int(np.argmin(values))]


def fit(terms: dict[str, Terms], targets: dict[str, float]) -> Params:
    """Parameters minimizing the squared log error over ``targets`` (model -> ms)."""
    models = list(targets)
    logs = np.log([targets[m] for m in models])

    def loss(x: np.ndarray) -> float:
        p = _to_params(x)
        pred = [combine(terms[m], p).sum() + terms[m].arm_ms for m in models]
        return float(np.sum((np.log(pred) - logs) ** 2))

    starts = [np.array(v, float) for v in ([0.0, 3.0], [-1.5, 2.0], [1.5, 4.0])]
    best = min((_nelder_mead(loss, s) for s in starts), key=loss)
    return _to_params(_nelder_mead(loss, best, step=0.1))


def fit_report(path: str | Path, soc: str = "tda4vm") -> FitReport:
    """Fit on all models, then leave each model out in turn (see the module docstring)."""
    rows, skipped = load_rows(path)
    terms, notes, targets = {}, {}, {}
    for model, group in _group(rows).items():
        r = group[0]
        layers, notes[model] = reference_layers(r.key, *r.size, gmacs=r.gmacs)
        terms[model] = layer_terms(layers, SOCS[soc], 8)
        targets[model] = math.exp(np.mean([math.log(x.ms) for x in group]))

    def predict(p: Params, model: str) -> float:
        return float(combine(terms[model], p).sum() + terms[model].arm_ms)

    gmacs = {m: g[0].gmacs for m, g in _group(rows).items()}
    params = fit(terms, targets)
    cv_ms, cv_params, base_ms = {}, {}, {}
    for model in targets:
        rest = {m: t for m, t in targets.items() if m != model}
        p = fit(terms, rest)
        cv_ms[model], cv_params[model] = predict(p, model), p
        a, b = _fit_baseline(gmacs, rest)
        base_ms[model] = a + gmacs[model] / b
    fit_ms = {m: predict(params, m) for m in targets}
    return FitReport(params, rows, fit_ms, cv_ms, cv_params, notes, base_ms, skipped)


def _fit_baseline(gmacs: dict[str, float], targets: dict[str, float]) -> tuple[float, float]:
    """(a ms, b GMACs per ms) of time = a + GMACs / b, squared log error over ``targets``."""
    models = list(targets)
    g, logs = np.array([gmacs[m] for m in models]), np.log([targets[m] for m in models])

    def loss(x: np.ndarray) -> float:
        return float(np.sum((np.log(np.exp(x[0]) + g / np.exp(x[1])) - logs) ** 2))

    x = _nelder_mead(loss, np.array([0.0, 0.0]))
    return float(np.exp(x[0])), float(np.exp(x[1]))


def _group(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.model, []).append(r)
    return out
