"""Fit, cross-validate and apply the offline TDA4VM/AM6xA latency estimate (deploy/estimate.py).

1. Fits the model's two free parameters on TI's published TDA4VM times
   (``bench/ti_tda4vm_latency.csv``, a copy of ``shared/ti-published/``), prints every row with its
   in-sample and leave-one-model-out estimate, the error per family, the data's noise floor and a
   GMACs-only baseline, and checks the constants stored in ``deploy/estimate.py`` against the fit.
2. Writes ``OUT/soc_estimate_fit.png``: leave-one-model-out estimate vs published, log-log.
3. Exports the zoo (random weights: latency does not depend on them) with
   ``gradgroup export --target tidl`` at each size and estimates every model on every SoC in 8 and
   16 bits, against the fps budget; writes ``OUT/soc_estimate_tables.md``. Needs torch for the
   export; ``--no-zoo`` skips it.

    python bench/soc_estimate.py --out bench --work /tmp/gg_soc
    python bench/soc_estimate.py --no-zoo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from gradgroup.deploy.estimate import FIT_ERROR, FITTED, KINDS, SOCS, SocEstimate, estimate
from gradgroup.deploy.estimate_fit import FitReport, fit_report
from gradgroup.deploy.estimate_report import caption
from gradgroup.deploy.table import format_markdown, format_table

HERE = Path(__file__).resolve().parent
ZOO = ("erfnet", "d", "dg2", "dg4", "dg8", "dg4s", "d-light", "dg2-light", "dg4-light",
       "dg8-light", "dg4s-light")  # fmt: skip
SIZES = ("512x1024", "256x512")


def fit_tables(rep: FitReport) -> tuple[str, str]:
    """(text, markdown) of the per-row, per-family and summary tables."""
    header = ["model (CSV)", "family", "input", "GMACs", "published ms", "fit ms", "cv ms",
              "cv err %", "layers from"]  # fmt: skip
    rows = []
    for r in rep.rows:
        cv = rep.cv_ms[r.model]
        rows.append([r.name[:44], r.family, f"{r.size[0]}x{r.size[1]}", f"{r.gmacs:g}",
                     f"{r.ms:.2f}", f"{rep.fit_ms[r.model]:.2f}", f"{cv:.2f}",
                     f"{100 * (cv - r.ms) / r.ms:+.0f}", rep.notes[r.model]])  # fmt: skip
    fam_header = ["family", "rows", "models", "cv median %", "cv p90 %", "cv max %"]
    fam = [[k, v["rows"], v["models"], f"{v['cv_median_pct']:.1f}", f"{v['cv_p90_pct']:.1f}",
            f"{v['cv_max_pct']:.1f}"] for k, v in rep.by_family().items()]  # fmt: skip
    s = rep.summary()
    sum_header = ["error per published row", "median %", "p90 %"]
    summ = [
        ["leave-one-model-out (22 folds)", f"{s['cv_median_pct']:.1f}", f"{s['cv_p90_pct']:.1f}"],
        ["in-sample fit", f"{s['fit_median_pct']:.1f}", f"{s['fit_p90_pct']:.1f}"],
        ["baseline a + GMACs/b, leave-one-model-out", f"{s['baseline_median_pct']:.1f}",
         f"{s['baseline_p90_pct']:.1f}"],
        ["noise floor: rows vs their model's mean", f"{s['noise_median_pct']:.1f}",
         f"{s['noise_p90_pct']:.1f}"],
    ]  # fmt: skip
    p = rep.params
    cv_eta = [q.mma_efficiency for q in rep.cv_params.values()]
    cv_oh = [q.layer_overhead_us for q in rep.cv_params.values()]
    params = (f"fitted: mma_efficiency {p.mma_efficiency:.3f} (folds {min(cv_eta):.3f}-"
              f"{max(cv_eta):.3f}), layer_overhead_us {p.layer_overhead_us:.1f} (folds "
              f"{min(cv_oh):.1f}-{max(cv_oh):.1f}); fixed: ddr_efficiency {p.ddr_efficiency:g}; "
              f"{len(rep.rows)} rows, {len(rep.by_model())} models; skipped (no GMACs): "
              f"{', '.join(rep.skipped)}")  # fmt: skip
    text = "\n\n".join([params, format_table(header, rows), format_table(fam_header, fam),
                        format_table(sum_header, summ)])  # fmt: skip
    md = "\n\n".join([params, format_markdown(sum_header, summ), format_markdown(fam_header, fam),
                      format_markdown(header, rows)])  # fmt: skip
    return text, md


def check_constants(rep: FitReport) -> list[str]:
    """Differences between the fit and the constants stored in deploy/estimate.py."""
    problems = []
    for k, v in rep.params.to_dict().items():
        stored = getattr(FITTED, k)
        if abs(stored - v) > 0.01 * abs(v) + 1e-9:
            problems.append(f"FITTED.{k} = {stored:g}, the fit gives {v:.4g}")
    for k, v in rep.summary().items():
        if abs(FIT_ERROR[k] - v) > 0.1:
            problems.append(f"FIT_ERROR[{k!r}] = {FIT_ERROR[k]:g}, the fit gives {v:.1f}")
    return problems


def plot_fit(rep: FitReport, path: Path) -> Path:
    """Log-log scatter of the leave-one-model-out estimate against every published row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    for fam, marker in (("dense", "o"), ("grouped", "s"), ("depthwise", "^")):
        rows = [r for r in rep.rows if r.family == fam]
        ax.scatter([r.ms for r in rows], [rep.cv_ms[r.model] for r in rows], marker=marker,
                   label=f"{fam} ({len(rows)} rows)", alpha=0.75)  # fmt: skip
    lim = np.array([0.8, 60.0])
    s = rep.summary()
    ax.plot(lim, lim, "k-", lw=1, label="estimate = published")
    for f, style in ((1 + s["cv_p90_pct"] / 100, "k:"), (1 + s["noise_p90_pct"] / 100, "k--")):
        ax.plot(lim, lim * f, style, lw=0.8)
        ax.plot(lim, lim / f, style, lw=0.8)
    ax.plot([], [], "k:", label=f"±{s['cv_p90_pct']:.0f} % (cv p90)")
    ax.plot([], [], "k--", label=f"±{s['noise_p90_pct']:.0f} % (noise p90 of the data)")
    ax.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel="TI published TDA4VM ms",
           ylabel="estimate ms (leave-one-model-out)",
           title=f"TDA4VM estimate vs TI's numbers: cv median {s['cv_median_pct']:.0f} %, "
                 f"p90 {s['cv_p90_pct']:.0f} %")  # fmt: skip
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def export_zoo(arch: str, size: str, work: Path) -> Path | str:
    """Random-weight checkpoint -> TIDL-target ONNX at ``size``; the path or the error text."""
    from gradgroup.deploy.preprocess import Preprocess, parse_size
    from gradgroup.train.checkpoint import model_state, save_checkpoint
    from gradgroup.train.models import create_model

    h, w = parse_size(size)
    out = work / f"{arch}_{h}x{w}.tidl.onnx"
    if out.exists():
        return out
    ckpt = work / f"{arch}_{h}x{w}.pt"
    save_checkpoint(ckpt, model_state(create_model(arch), arch, preprocess=Preprocess(h, w)))
    cmd = [sys.executable, "-m", "gradgroup", "-q", "export", str(ckpt), "--out", str(out)]
    cmd += ["--size", size, "--target", "tidl", "--calib-data", "none", "--verify-frames", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return out if proc.returncode == 0 else (lines[-1] if lines else f"exit {proc.returncode}")


def zoo_tables(archs: list[str], sizes: list[str], work: Path, fps: float) -> tuple[str, str]:
    """Estimates of the zoo on every SoC, 8 and 16 bits, and the grouping-premise table."""
    est: dict[tuple[str, str, str, int], SocEstimate] = {}
    for size in sizes:
        for arch in archs:
            print(f"exporting {arch} {size} ...", file=sys.stderr)
            path = export_zoo(arch, size, work)
            if isinstance(path, str):
                print(f"  {arch} {size}: {path}", file=sys.stderr)
                continue
            for chip in SOCS:
                for bits in (8, 16):
                    est[(arch, size, chip, bits)] = estimate(path, chip, bits)
    header = ["model", *(f"{c} {s} int{b} fps" for s in sizes for c in SOCS for b in (8, 16))]
    cols = [(c, s, b) for s in sizes for c in SOCS for b in (8, 16)]

    def cell(arch: str, c: str, s: str, b: int) -> str:
        e = est.get((arch, s, c, b))
        if e is None:
            return "-"
        mark = {"yes": "", "maybe": "?", "no": "✗"}[e.meets(fps)]
        return f"{e.fps:.0f}{mark}"

    table = [[a, *(cell(a, c, s, b) for c, s, b in cols)] for a in archs]
    # TDA4VM int8 at the first size: breakdown per layer kind.
    s0 = sizes[0]
    kinds_header = ["model", "GMACs", "est. ms", "band ms", "fps", f"meets {fps:g}",
                    *(f"{k} ms" for k in KINDS), "layers", "MMA fill", "DDR MB"]  # fmt: skip
    kinds = []
    for a in archs:
        e = est.get((a, s0, "tda4vm", 8))
        if e is not None:
            macs = _macs(work, a, s0)
            kinds.append([a, f"{macs:.2f}", f"{e.ms:.1f}", f"{e.low_ms:.1f}-{e.high_ms:.1f}",
                          f"{e.fps:.1f}", e.meets(fps), *(f"{e.by_kind_ms[k]:.2f}" for k in KINDS),
                          e.layers, f"{e.utilization:.2f}", f"{e.ddr_mb:.0f}"])  # fmt: skip
    # The paper's premise: the encoder's pointwise MACs fall 2x / 4x / 8x from d to dg2/4/8.
    premise_header = ["model", "1x1 GMACs", "x fewer than d", "1x1 est. ms", "x faster than d",
                      "whole model x faster than d"]  # fmt: skip
    premise = []
    base = est.get(("d", s0, "tda4vm", 8))
    for a in ("d", "dg2", "dg4", "dg8"):
        e = est.get((a, s0, "tda4vm", 8))
        if e is None or base is None:
            continue
        (macs, ms), (base_macs, base_ms) = _pointwise(work, a, s0), _pointwise(work, "d", s0)
        premise.append([a, f"{macs:.2f}", f"{base_macs / macs:.2f}", f"{ms:.2f}",
                        f"{base_ms / ms:.2f}", f"{base.ms / e.ms:.2f}"])  # fmt: skip
    legend = (
        f"estimated fps per SoC, size (HxW) and tensor bits; no mark = meets {fps:g} fps even at "
        "the slow end of the error band, ? = the budget lies inside the band, ✗ = misses it even "
        "at the fast end"
    )
    text = "\n\n".join([caption(fps), legend, format_table(header, table),
                        f"TDA4VM int8 {s0}, per layer kind", format_table(kinds_header, kinds),
                        "grouping on the 64-wide MMA (TDA4VM int8, " + s0 + ")",
                        format_table(premise_header, premise)])  # fmt: skip
    md = "\n\n".join([caption(fps), legend, format_markdown(header, table),
                      f"**TDA4VM int8 {s0}, per layer kind**", format_markdown(kinds_header, kinds),
                      f"**grouping on the 64-wide MMA (TDA4VM int8, {s0})**",
                      format_markdown(premise_header, premise)])  # fmt: skip
    return text, md


def _macs(work: Path, arch: str, size: str) -> float:
    from gradgroup.deploy.graph.stats import graph_stats

    h, w = size.split("x")
    return graph_stats(work / f"{arch}_{h}x{w}.tidl.onnx").macs / 1e9


def _pointwise(work: Path, arch: str, size: str) -> tuple[float, float]:
    """(GMACs, TDA4VM int8 estimate ms) of the 1x1 convs, dense or grouped, of the TIDL graph."""
    from gradgroup.deploy.estimate import estimate_layers
    from gradgroup.deploy.graph.stats import layer_table

    h, w = size.split("x")
    layers = layer_table(work / f"{arch}_{h}x{w}.tidl.onnx")
    pointwise = [x for x in layers if x.kind in ("dense", "grouped") and x.kernel == (1, 1)]
    return sum(x.macs for x in pointwise) / 1e9, estimate_layers(pointwise, "tda4vm").ms


def main(argv: list[str] | None = None) -> int:
    """Fit, validate, plot and apply; print everything, write the PNG and the markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=HERE / "ti_tda4vm_latency.csv")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNG and .md go")
    parser.add_argument("--work", type=Path, help="zoo export folder (default: a temp folder)")
    parser.add_argument("--archs", nargs="+", default=list(ZOO))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="HxW")
    parser.add_argument("--fps-target", type=float, default=30.0)
    parser.add_argument("--no-zoo", action="store_true", help="fit and validate only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rep = fit_report(args.csv)
    text, md = fit_tables(rep)
    print(text)
    problems = check_constants(rep)
    print("\nstored constants: " + ("match the fit" if not problems else "; ".join(problems)))
    png = plot_fit(rep, args.out / "soc_estimate_fit.png")
    parts = ["# SoC estimate: fit on TI's TDA4VM rows", "", md]
    if not args.no_zoo:
        work = args.work or Path(tempfile.mkdtemp(prefix="gg_soc_"))
        work.mkdir(parents=True, exist_ok=True)
        ztext, zmd = zoo_tables(args.archs, args.sizes, work, args.fps_target)
        print("\n" + ztext)
        parts += ["", "# The zoo", "", zmd]
    md_path = args.out / "soc_estimate_tables.md"
    md_path.write_text("\n".join(parts) + "\n")
    print(f"\nsoc estimate saved as {png} and {md_path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
