"""``gradgroup bench --estimate SOC``: the offline SoC estimate as tables and JSON (torch-free).

Without a board the estimate is all there is; with ``--provider tidl`` on a board the same command
prints estimate and measurement side by side, so the model can be corrected from real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .estimate import FIT_ERROR, KINDS, SOCS, SocEstimate, estimate, soc
from .table import format_markdown, format_table

HEADER = ("model", "SoC", "bits", "est. ms", "band ms", "est. fps", "meets {fps:g} fps",
          *(f"{k} ms" for k in KINDS), "layers", "Arm layers", "DDR MB", "MMA fill")  # fmt: skip
SIDE_HEADER = ("model", "SoC", "est. ms", "band ms", "measured p50 ms", "measured / est.",
               "est. DDR MB", "measured DDR MB")  # fmt: skip


@dataclass(frozen=True)
class EstimateRow:
    """One model's estimate on one SoC."""

    model: str
    name: str
    estimate: SocEstimate

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "name": self.name, **self.estimate.to_dict()}


def parse_socs(text: str) -> list[str]:
    """``"tda4vm"``, ``"tda4vm,am62a"`` or ``"all"`` -> SoC names; InputError names a bad one."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not names:
        raise InputError(f"--estimate {text!r} names no SoC (choose from {', '.join(SOCS)}, all)")
    if names == ["all"]:
        return list(SOCS)
    return [soc(n).name for n in names]


def estimate_models(models: list[str | Path], socs: list[str], bits: int = 8) -> list[EstimateRow]:
    """Estimate every model on every SoC (models outer, SoCs inner).

    Raises:
        InputError: a missing or unreadable model, bad bits, an unknown SoC.
    """
    if not models:
        raise InputError("no models given; pass one or more ONNX files")
    rows = []
    for m in models:
        path = Path(m)
        if not path.is_file():
            raise InputError(f"model {path} does not exist")
        for name in socs:
            rows.append(EstimateRow(str(path), path.stem, estimate(path, name, bits)))
    return rows


def _cells(r: EstimateRow, fps: float) -> list[str]:
    e = r.estimate
    high = f"{e.high_ms:.1f}" if e.high_ms != float("inf") else "inf"
    return [r.name, e.soc, str(e.bits), f"{e.ms:.1f}", f"{e.low_ms:.1f}-{high}", f"{e.fps:.1f}",
            e.meets(fps), *(f"{e.by_kind_ms[k]:.2f}" for k in KINDS), str(e.layers),
            str(e.arm_layers), f"{e.ddr_mb:.1f}", f"{e.utilization:.2f}"]  # fmt: skip


def caption(fps: float) -> str:
    """What the numbers are, with the error they carry."""
    return (
        f"**estimate**, not a measurement: per-layer C7x/MMA model fitted on TI's published "
        f"TDA4VM times; leave-one-model-out error median {FIT_ERROR['cv_median_pct']:.0f} %, "
        f"90th percentile {FIT_ERROR['cv_p90_pct']:.0f} % (the data's own noise: median "
        f"{FIT_ERROR['noise_median_pct']:.0f} %); band = that 90th percentile; "
        f"meets {fps:g} fps: yes / no / maybe (budget inside the band); other SoCs are not "
        "validated (the model: gradgroup.deploy.estimate)"
    )


def format_estimates(rows: list[EstimateRow], fps: float = 30.0, markdown: bool = False) -> str:
    """The estimate table with its caption."""
    header = [h.format(fps=fps) for h in HEADER]
    cells = [_cells(r, fps) for r in rows]
    table = format_markdown(header, cells) if markdown else format_table(header, cells)
    return f"{caption(fps)}\n\n{table}" if markdown else f"{caption(fps)}\n{table}"


def side_by_side(rows: list[EstimateRow], measured: dict[str, Any]) -> str:
    """Estimate next to a board measurement: ``measured`` maps model path -> BenchRow."""
    cells = []
    for r in rows:
        m = measured.get(r.model)
        if m is None:
            continue
        e, p50 = r.estimate, m.inference.p50
        ddr = m.measured.get("ti_ddr_mb_per_frame")
        high = f"{e.high_ms:.1f}" if e.high_ms != float("inf") else "inf"
        cells.append([r.name, e.soc, f"{e.ms:.1f}", f"{e.low_ms:.1f}-{high}", f"{p50:.2f}",
                      f"{p50 / e.ms:.2f}", f"{e.ddr_mb:.1f}",
                      f"{ddr:.1f}" if ddr is not None else "-"])  # fmt: skip
    return "estimate vs measurement (TIDL)\n" + format_table(SIDE_HEADER, cells)
