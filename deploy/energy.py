"""Energy per frame: an analytical estimate from the ONNX graph, and measured counters.

The estimate uses the seed's 32-bit table and Horowitz (ISSCC 2014) 8-bit figures (DESIGN.md
"Energy model"), in picojoules:

- compute: every MAC costs one multiply and one add at its layer's precision
  (fp32 3.7 + 0.9 = 4.6 pJ; int8 0.2 + 0.03 = 0.23 pJ; a layer is int8 when its weight comes
  through a DequantizeLinear or a QLinear op).
- memory: 5 pJ (on-chip SRAM) or 640 pJ (DRAM) per 32-bit word, i.e. per 4 bytes. Every tensor is
  moved once per frame: a weight is read once, an activation is written once and read once, the
  graph input is read once and each graph output written once. Where a tensor lives:

  * weights stay resident in SRAM between frames when *all* weights plus the peak of live
    intermediate activations fit the SRAM budget; otherwise every weight is read from DRAM each
    frame;
  * an intermediate activation is in SRAM when the intermediates live while it is produced (it
    included) fit the budget left after resident weights; otherwise it is written to and read
    back from DRAM;
  * the graph input and outputs cross DRAM (camera and display buffers live there).

The default budget is 8 MB, TDA4VM's MSMC SRAM. Register-file traffic is not counted. Every figure
from this model is labelled "estimate"; counter readings (RAPL package energy, TIDL DDR bytes) are
labelled "measured".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .graph.stats import GraphStats

log = logging.getLogger(__name__)

# Seed table (32-bit) and Horowitz 2014 (8-bit), picojoules per operation / 32-bit access.
PJ = {
    "fp32_add": 0.9, "fp32_mult": 3.7, "int32_add": 0.1, "int32_mult": 3.1,
    "int8_add": 0.03, "int8_mult": 0.2, "rf_word": 1.0, "sram_word": 5.0, "dram_word": 640.0,
}  # fmt: skip
MAC_PJ = {"fp32": PJ["fp32_mult"] + PJ["fp32_add"], "int8": PJ["int8_mult"] + PJ["int8_add"]}
DEFAULT_SRAM_MB = 8.0  # TDA4VM MSMC
RAPL_PATH = Path("/sys/class/powercap/intel-rapl:0")


@dataclass(frozen=True)
class EnergyEstimate:
    """Analytical energy of one frame (all figures are estimates).

    Attributes:
        compute_mj, sram_mj, dram_mj: the three terms in millijoules per frame.
        total_mj: their sum.
        watts: total power at ``fps``.
        fps: the frame rate the power is computed for.
        sram_mb: the on-chip budget used.
        weights_resident: whether all weights stayed in SRAM.
        dram_bytes: bytes per frame charged at DRAM cost.
        label: always "estimate".
    """

    compute_mj: float
    sram_mj: float
    dram_mj: float
    total_mj: float
    watts: float
    fps: float
    sram_mb: float
    weights_resident: bool
    dram_bytes: int
    label: str = "estimate"


def estimate_energy(
    stats: GraphStats, fps: float = 30.0, sram_mb: float = DEFAULT_SRAM_MB
) -> EnergyEstimate:
    """Energy per frame of a graph under the rule in the module docstring.

    Args:
        stats: counts from :func:`gradgroup.deploy.graph.stats.graph_stats`.
        fps: frame rate for the power figure.
        sram_mb: on-chip SRAM budget in MB (10^6 bytes).

    Raises:
        InputError: non-positive fps or negative budget.
    """
    if fps <= 0:
        raise InputError(f"fps {fps} must be positive")
    if sram_mb < 0:
        raise InputError(f"SRAM budget {sram_mb} MB must not be negative")
    budget = sram_mb * 1e6
    compute_pj = sum(MAC_PJ.get(p, MAC_PJ["fp32"]) * n for p, n in stats.macs_by_precision.items())
    resident = stats.weight_bytes + stats.peak_intermediate_bytes <= budget
    act_budget = budget - (stats.weight_bytes if resident else 0)
    sram_bytes = dram_bytes = 0
    for t in stats.tensors:
        if t.kind == "weight":
            sram_bytes += t.nbytes if resident else 0
            dram_bytes += 0 if resident else t.nbytes
        elif t.kind in ("input", "output"):
            dram_bytes += t.nbytes
        elif t.live_bytes <= act_budget:
            sram_bytes += 2 * t.nbytes  # written once, read once
        else:
            dram_bytes += 2 * t.nbytes
    to_mj = 1e-9
    compute = compute_pj * to_mj
    sram = sram_bytes / 4 * PJ["sram_word"] * to_mj
    dram = dram_bytes / 4 * PJ["dram_word"] * to_mj
    total = compute + sram + dram
    return EnergyEstimate(
        compute_mj=compute, sram_mj=sram, dram_mj=dram, total_mj=total, watts=total * 1e-3 * fps,
        fps=fps, sram_mb=sram_mb, weights_resident=resident, dram_bytes=int(dram_bytes),
    )  # fmt: skip


def dram_mj_from_bytes(nbytes: float) -> float:
    """DRAM energy (mJ) of ``nbytes`` moved, at the table's 640 pJ per 32-bit word."""
    return nbytes / 4 * PJ["dram_word"] * 1e-9


class RaplMeter:
    """Package energy from the Linux powercap RAPL counter (``energy_uj``), wrap-around safe.

    Args:
        path: the RAPL zone directory (``/sys/class/powercap/intel-rapl:0`` by default; tests
            pass a fake directory).
    """

    def __init__(self, path: str | Path = RAPL_PATH) -> None:
        self.path = Path(path)
        self._start: int | None = None

    @property
    def available(self) -> bool:
        """Whether the counter exists and this user may read it."""
        try:
            self._read()
            return True
        except (OSError, ValueError):
            return False

    def _read(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())

    def _range(self) -> int:
        try:
            return int((self.path / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            return 2**32  # the common counter width when the range file is unreadable

    def start(self) -> None:
        """Remember the counter now."""
        self._start = self._read()

    def stop(self) -> float:
        """Joules since :meth:`start` (one wrap-around handled)."""
        if self._start is None:
            raise RuntimeError("RaplMeter.stop() called before start()")
        end = self._read()
        delta = end - self._start
        if delta < 0:
            delta += self._range()
        self._start = None
        return delta * 1e-6


def ti_ddr_bytes(stats: dict) -> int:
    """DDR bytes read + written in one run from ``session.get_TI_benchmark_data()``."""
    try:
        read = int(stats["ddr:read_end"]) - int(stats["ddr:read_start"])
        write = int(stats["ddr:write_end"]) - int(stats["ddr:write_start"])
    except (KeyError, TypeError, ValueError):
        return 0
    return max(read, 0) + max(write, 0)
