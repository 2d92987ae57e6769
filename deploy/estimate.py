"""Offline latency estimate of an ONNX model on a TI C7x/MMA SoC (TDA4VM, AM68A, AM69A, AM62A).

Torch-free: a per-layer roofline of the accelerator, from the ONNX graph alone. Every figure it
gives is an **estimate**, with the error band measured against TI's published TDA4VM numbers
(``bench/soc_estimate.py``, ``bench/SOC_ESTIMATE.md``). Per layer (``graph.stats.layer_table``):

- **MMA compute**: MACs / (utilization x MACs per cycle x clock x ``mma_efficiency``). The MMA
  multiplies a row of ``P`` inputs by a ``P x P`` weight panel per cycle (P = 64 on TDA4VM,
  32 on AM62A). Utilization is how much of the panels a conv fills: a dense conv with
  K = cin*kh*kw and N = cout fills K/(P*ceil(K/P)) x N/(P*ceil(N/P)). A grouped conv is assumed
  packed block-diagonally (P // cout_g groups share one panel, the best a P-wide MMA can do
  without idle columns), so a conv with cin_g < P input channels per group fills only cin_g / P:
  16-channel groups use 1/4 of a 64-wide panel. Packed that way a depthwise conv would fill 1/P,
  which TI's rows rule out (SSD-MobileNetV2's depthwise layers alone would take longer than the
  published total), so a depthwise conv is assumed mapped row by row instead: an input row of P
  pixels times a banded P x P matrix of one channel's kw taps, filling kw / P (3/64 for 3x3).
  The rows do not pin this down further (any fill from ~4/64 up fits them alike, see
  ``bench/SOC_ESTIMATE.md``); it is an assumption, not a fit.
  16-bit tensors (``tensor_bits=16``) run at a quarter of the 8-bit MAC rate (assumed).
- **DDR traffic**: every weight streams from DDR each frame (TI documents this); an activation
  larger than half the on-chip L3/MSMC budget is written to and read back from DDR. Time =
  bytes / (``ddr_efficiency`` x peak bandwidth), ``ddr_efficiency`` = 1: a free DDR efficiency
  ran to its bound of 1.0 on TI's rows, which cannot tell it apart, so it is not fitted.
- **other layers** (add, concat, pooling, resize, transposes ...): bytes through the C7x vector
  unit (bytes per cycle x clock, assumed); ReLU / BN-after-conv / Q-DQ / reshapes are fused (free).
- per layer: max(compute, DDR) + ``layer_overhead_us``.
- **Arm fallback**: layers ``gradgroup check`` lists as unsupported run on the Arm cores at an
  assumed MAC rate and bandwidth, and each run of them costs two subgraph switches (assumed time
  plus the boundary tensors through DDR).

The two free parameters (``mma_efficiency``, ``layer_overhead_us``) are fitted once, on TDA4VM,
by ``deploy/estimate_fit.py``; the other SoCs reuse them with their own (partly assumed)
hardware facts: :data:`SOCS` says which are which.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .graph.stats import Layer, layer_table

KINDS = ("dense", "grouped", "depthwise", "transposed", "other", "arm")
# Fused into the layer before them by TIDL, or metadata only: no layer, no time.
FREE_OPS = frozenset((
    "Relu", "Clip", "LeakyRelu", "PRelu", "Identity", "Dropout", "QuantizeLinear",
    "DequantizeLinear", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Constant", "Shape",
))  # fmt: skip
_FUSE_AFTER = ("Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "ConvInteger")


@dataclass(frozen=True)
class Soc:
    """Hardware facts of one SoC's deep-learning core (TIDL runs one model on one C7x/MMA).

    Attributes:
        name: CLI name.
        panel: MMA panel width P (a P x P weight panel per cycle).
        macs_per_cycle: 8-bit MACs per cycle of one MMA.
        clock_ghz: C7x/MMA clock.
        ddr_gbps: peak DDR bandwidth, GB/s.
        onchip_mb: L3/MSMC SRAM TIDL can keep feature maps in, MB.
        vector_bytes: C7x vector bytes per cycle (element-wise layers).
        arm_gmacs: Arm cores' sustained int8 GMAC/s for fallback layers (all cores).
        arm_gbps: Arm cores' sustained GB/s for fallback layers without MACs.
        switch_ms: cost of one switch between the accelerator and the Arm.
        sources: where each fact comes from ("assumed" where no document was at hand).
    """

    name: str
    panel: int
    macs_per_cycle: int
    clock_ghz: float
    ddr_gbps: float
    onchip_mb: float
    vector_bytes: int
    arm_gmacs: float
    arm_gbps: float
    switch_ms: float
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def tops(self) -> float:
        """Peak 8-bit TOPS of one core (2 ops per MAC)."""
        return 2 * self.macs_per_cycle * self.clock_ghz / 1000


_ARM = "assumed: ORT on Cortex-A72, ~4 int8 MACs/cycle/core sustained (NEON, no dot product)"
# fmt: off
SOCS: dict[str, Soc] = {
    "tda4vm": Soc("tda4vm", 64, 4096, 1.0, 17.07, 8.0, 64, 16.0, 4.0, 0.3, {
        "mma": "TI: 4096 8-bit MACs/cycle (64x64) at 1 GHz (shared/ti-published/README.md)",
        "ddr": "TI: one 32-bit LPDDR4 at 4266 MT/s = 17.07 GB/s peak (same README)",
        "onchip": "TI: 8 MB MSMC SRAM (J721E TRM; the energy model of gradgroup.deploy.energy)",
        "vector": "assumed: C71x 512-bit vectors, 64 B/cycle",
        "arm": "2x A72 at 2 GHz; " + _ARM, "switch": "assumed: 0.3 ms per subgraph switch",
    }),
    "am68a": Soc("am68a", 64, 2048, 1.0, 34.1, 4.0, 64, 16.0, 4.0, 0.3, {
        "mma": "assumed: TI's 8 TOPS over two C7x/MMA = 4 TOPS (2048 MACs/cycle) per core, "
               "64-wide panels as on TDA4VM",
        "ddr": "assumed: two 32-bit LPDDR4 channels at 4266 MT/s",
        "onchip": "TI: 4 MB MSMC SRAM (J721S2 TRM, SPRUJ28)",
        "vector": "assumed: 512-bit C7x", "arm": "2x A72 at 2 GHz; " + _ARM,
        "switch": "assumed: 0.3 ms",
    }),
    "am69a": Soc("am69a", 64, 4096, 1.0, 68.3, 8.0, 64, 64.0, 16.0, 0.3, {
        "mma": "assumed: TI's 32 TOPS over four C7x/MMA = 8 TOPS (64x64 at 1 GHz) per core",
        "ddr": "assumed: four 32-bit LPDDR4 channels at 4266 MT/s",
        "onchip": "assumed: 8 MB MSMC as on TDA4VM", "vector": "assumed: 512-bit C7x",
        "arm": "8x A72 at 2 GHz; " + _ARM, "switch": "assumed: 0.3 ms",
    }),
    "am62a": Soc("am62a", 32, 1024, 1.0, 14.9, 1.0, 32, 5.6, 2.0, 0.5, {
        "mma": "TI SPRAD74: 32x32 8-bit MMA at 1 GHz, 2 TOPS; 256-bit C7x",
        "ddr": "assumed: one 32-bit LPDDR4 at 3733 MT/s",
        "onchip": "assumed: 1 MB L3 (a public TIDL perfsim config: MSMCSIZE_KB 1024)",
        "vector": "TI SPRAD74: 256-bit C7x, 32 B/cycle",
        "arm": "assumed: 4x A53 at 1.4 GHz, ~1 int8 MAC/cycle/core", "switch": "assumed: 0.5 ms",
    }),
}
# fmt: on


@dataclass(frozen=True)
class Params:
    """The model's parameters: the first two fitted on TDA4VM by ``deploy/estimate_fit.py``."""

    mma_efficiency: float  # fraction of peak a fully filled panel sustains
    layer_overhead_us: float  # fixed cost per (non-fused) layer
    ddr_efficiency: float = 1.0  # fraction of peak DDR bandwidth sustained (not fitted)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Printed by `python bench/soc_estimate.py` (fit on all 54 TI rows with GMACs, 22 models); the
# cv errors are its leave-one-model-out cross-validation, per published row; "baseline" is the
# same for time = a + GMACs / b; "noise" is the rows' spread around their own model's mean.
FITTED = Params(mma_efficiency=0.513, layer_overhead_us=29.8)
FIT_ERROR = {"cv_median_pct": 14.9, "cv_p90_pct": 35.4, "fit_median_pct": 13.2, "fit_p90_pct": 33.5,
             "baseline_median_pct": 21.4, "baseline_p90_pct": 75.8, "noise_median_pct": 5.8,
             "noise_p90_pct": 17.6}  # fmt: skip


@dataclass(frozen=True)
class Terms:
    """Per-layer time terms at unit parameters (seconds); :func:`combine` applies the params."""

    kind: np.ndarray  # index into KINDS
    compute_s: np.ndarray  # MMA or vector time at efficiency 1
    ddr_s: np.ndarray  # DDR time at efficiency 1
    mma: np.ndarray  # bool: compute scales with 1 / mma_efficiency
    counted: np.ndarray  # bool: pays the layer overhead
    arm_ms: float  # fallback layers and their subgraph switches (parameter-free)
    arm_layers: int
    subgraphs: int
    ddr_bytes: float
    macs: int
    util_macs: float  # MACs weighted by panel utilization (for the mean utilization)


def soc(name: str) -> Soc:
    """The :class:`Soc` called ``name``; InputError (one line) for anything else."""
    key = str(name).strip().lower()
    if key not in SOCS:
        close = difflib.get_close_matches(key, SOCS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown SoC {name!r}{hint} (choose from {', '.join(SOCS)})")
    return SOCS[key]


def panel_utilization(layer: Layer, panel: int) -> float:
    """Fraction of the MMA's P x P panels a conv / matmul fills (module docstring)."""
    if layer.kind == "depthwise":
        return min(1.0, layer.kernel[1] / panel)
    groups = max(layer.groups, 1)
    cin_g, cout_g = max(layer.cin // groups, 1), max(layer.cout // groups, 1)
    k_g = cin_g * layer.kernel[0] * layer.kernel[1]
    packed = max(1, panel // cout_g)  # groups sharing one panel (block-diagonal)
    packed = min(packed, groups)
    panels = (
        math.ceil(groups / packed)
        * math.ceil(packed * k_g / panel)
        * math.ceil(packed * cout_g / panel)
    )
    return groups * k_g * cout_g / (panels * panel * panel)


def layer_terms(
    layers: list[Layer], chip: Soc, bits: int = 8, arm: frozenset[str] = frozenset()
) -> Terms:
    """Per-layer time terms of ``layers`` on ``chip`` (``arm``: names of fallback layers)."""
    if bits not in (8, 16):
        raise InputError(f"tensor bits {bits} must be 8 or 16")
    nbytes = bits // 8
    rate = chip.macs_per_cycle * chip.clock_ghz * 1e9 / (1 if bits == 8 else 4)
    vector = chip.vector_bytes * chip.clock_ghz * 1e9
    spill = chip.onchip_mb * 1e6 / 2
    rows: list[tuple[int, float, float, bool, bool]] = []
    arm_s, arm_layers, subgraphs, on_arm = 0.0, 0, 0, False
    ddr_bytes, macs, util_macs = 0.0, 0, 0.0
    previous = ""
    for layer in layers:
        in_b, out_b = layer.in_elems * nbytes, layer.out_elems * nbytes
        free = layer.op in FREE_OPS or (
            layer.op == "BatchNormalization" and previous in _FUSE_AFTER
        )
        if layer.name in arm:
            if not on_arm:  # entering a fallback subgraph: the tensor goes out through DDR
                subgraphs += 1
                arm_s += 2 * chip.switch_ms / 1e3 + 2 * in_b / (chip.ddr_gbps * 1e9)
            arm_s += layer.macs / (chip.arm_gmacs * 1e9) + (in_b + out_b) / (chip.arm_gbps * 1e9)
            arm_layers, on_arm = arm_layers + 1, True
            continue
        on_arm = False
        if free:
            continue
        previous = layer.op
        ddr = (layer.weight_elems * nbytes + (in_b if in_b > spill else 0)
               + (out_b if out_b > spill else 0))  # fmt: skip
        ddr_bytes += ddr
        if layer.kind == "other":
            rows.append((KINDS.index("other"), (in_b + out_b) / vector, ddr, False, True))
            continue
        util = panel_utilization(layer, chip.panel)
        macs += layer.macs
        util_macs += layer.macs * util
        kind = "dense" if layer.kind == "matmul" else layer.kind
        rows.append((KINDS.index(kind), layer.macs / (util * rate), ddr, True, True))
    a = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return Terms(
        kind=a[:, 0].astype(int), compute_s=a[:, 1], ddr_s=a[:, 2] / (chip.ddr_gbps * 1e9),
        mma=a[:, 3] > 0, counted=a[:, 4] > 0, arm_ms=arm_s * 1e3,
        arm_layers=arm_layers, subgraphs=subgraphs, ddr_bytes=ddr_bytes, macs=macs,
        util_macs=util_macs,
    )  # fmt: skip


def combine(terms: Terms, params: Params) -> np.ndarray:
    """Milliseconds per layer: max(compute, DDR) + overhead (fallback time not included)."""
    compute = terms.compute_s / np.where(terms.mma, params.mma_efficiency, 1.0)
    ddr = terms.ddr_s / params.ddr_efficiency
    return (np.maximum(compute, ddr) + terms.counted * params.layer_overhead_us * 1e-6) * 1e3


@dataclass(frozen=True)
class SocEstimate:
    """Estimated time per frame of one model on one SoC (every figure is an estimate).

    Attributes:
        soc, bits: the target and its tensor bits.
        ms, fps: time per frame and its rate.
        low_ms, high_ms: the error band (TDA4VM cross-validation p90, see ``band``).
        by_kind_ms: time per layer kind (dense / grouped / depthwise / transposed / other / arm).
        layers: accelerator layers; arm_layers, subgraphs: Arm fallback layers and their runs.
        ddr_mb: DDR megabytes per frame; utilization: MAC-weighted mean panel fill.
        band: how the band was measured; label: always "estimate".
    """

    soc: str
    bits: int
    ms: float
    fps: float
    low_ms: float
    high_ms: float
    by_kind_ms: dict[str, float]
    layers: int
    arm_layers: int
    subgraphs: int
    ddr_mb: float
    utilization: float
    band: str
    label: str = "estimate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def meets(self, fps_target: float) -> str:
        """Whether the estimate meets ``fps_target``: yes, no, or maybe (inside the band)."""
        budget = 1000.0 / fps_target
        return "yes" if self.high_ms <= budget else "no" if self.low_ms > budget else "maybe"


def estimate_layers(
    layers: list[Layer],
    chip: str | Soc = "tda4vm",
    bits: int = 8,
    arm: frozenset[str] = frozenset(),
    params: Params = FITTED,
) -> SocEstimate:
    """Estimate from a layer list (see :func:`estimate` for an ONNX file)."""
    chip = soc(chip) if isinstance(chip, str) else chip
    terms = layer_terms(layers, chip, bits, arm)
    per_layer = combine(terms, params)
    by_kind = {k: float(per_layer[terms.kind == i].sum()) for i, k in enumerate(KINDS)}
    by_kind["arm"] = terms.arm_ms
    ms = float(per_layer.sum()) + terms.arm_ms
    err = FIT_ERROR["cv_p90_pct"] / 100.0
    low, high = ms / (1 + err), (ms / (1 - err) if err < 1 else math.inf)
    band = (f"published TDA4VM rows lie within {FIT_ERROR['cv_p90_pct']:.0f} % of the estimate "
            "for 90 % of rows (leave-one-model-out)")  # fmt: skip
    if chip.name != "tda4vm":
        band += f"; {chip.name} is not validated (no published rows, some facts assumed)"
    return SocEstimate(
        soc=chip.name, bits=bits, ms=ms, fps=1000.0 / ms, low_ms=low, high_ms=high,
        by_kind_ms=by_kind, layers=int(terms.counted.sum()), arm_layers=terms.arm_layers,
        subgraphs=terms.subgraphs, ddr_mb=terms.ddr_bytes / 1e6,
        utilization=terms.util_macs / terms.macs if terms.macs else 0.0, band=band,
    )  # fmt: skip


def estimate(
    model: str | Path | Any,
    chip: str = "tda4vm",
    bits: int = 8,
    input_size: tuple[int, int] | None = None,
    params: Params = FITTED,
) -> SocEstimate:
    """Estimated TIDL latency of an ONNX model on ``chip``.

    Args:
        model: path of an ONNX file or an ``onnx.ModelProto`` (float or QDQ: TIDL quantizes
            either to ``bits``).
        chip: "tda4vm", "am68a", "am69a" or "am62a".
        bits: TIDL ``tensor_bits`` (8 or 16).
        input_size: (H, W) where the graph input has symbolic spatial dims.
        params: the free parameters (default: the fitted ones).

    Raises:
        InputError: unknown SoC, bad bits, unreadable model or uninferable shapes.
    """
    from .graph.core import load_onnx
    from .graph.tidl_check import UNSUPPORTED, check_tidl

    chip_facts = soc(chip)
    if bits not in (8, 16):
        raise InputError(f"tensor bits {bits} must be 8 or 16")
    if isinstance(model, (str, Path)):
        model = load_onnx(model)
    if input_size is None:  # a symbolic graph input: the size the model was exported for
        from .metadata import ModelMeta

        meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
        input_size = meta.preprocess.size if meta is not None else None
    arm = frozenset(f.node for f in check_tidl(model) if f.severity == UNSUPPORTED)
    return estimate_layers(layer_table(model, input_size), chip_facts, bits, arm, params)
