"""Reproduce DESIGN.md's latency table with gradgroup's own tools.

For each architecture (ERFNet, D, DG4, DG4S by default) and input size (512x256 and 1024x512, i.e.
HxW 256x512 and 512x1024) this script

1. saves a checkpoint of the model with random weights (latency does not depend on the values),
2. exports it with ``gradgroup export CKPT --out M.onnx --size HxW`` (the calibration set comes with
   it),
3. quantizes it with ``gradgroup calib M.onnx --out M.int8.onnx`` (ORT static QDQ int8),
4. benchmarks every model of one size with :func:`gradgroup.deploy.bench.benchmark`
   (2 threads, CPU provider), ERFNet fp32 as the baseline,

and prints (and writes to ``OUT/latency_table.md``) the table: inference p50 in ms per model,
precision and size, with the ratio to ERFNet fp32 at the same size. A step that fails is reported
in its cell and the rest goes on. Needs the training extras (torch) for step 1.

    python bench/latency_table.py --out runs/latency_table
    python bench/latency_table.py --out /tmp/lt --sizes 128x256 --archs erfnet dg4 --duration 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from gradgroup.deploy.bench import BenchConfig, BenchRow, benchmark, system_info
from gradgroup.deploy.bench_report import format_report, header_lines, write_json, write_text
from gradgroup.deploy.preprocess import Preprocess, parse_size
from gradgroup.deploy.table import format_markdown, format_table

ARCHS = ("erfnet", "d", "dg4", "dg4s")
SIZES = ("256x512", "512x1024")
PRECISIONS = ("fp32", "int8")


def _gradgroup(*args: str) -> tuple[bool, str]:
    """Run the gradgroup CLI in a subprocess; (ok, last line of its output)."""
    proc = subprocess.run([sys.executable, "-m", "gradgroup", "-q", *args], capture_output=True,
                          text=True)  # fmt: skip
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode == 0, lines[-1] if lines else f"exit {proc.returncode}"


def make_models(arch: str, size: tuple[int, int], work: Path, precisions: tuple[str, ...],
                calib_args: list[str]) -> dict[str, Path | str]:  # fmt: skip
    """Checkpoint -> fp32 ONNX -> int8 ONNX; {precision: path, or the error text}."""
    from gradgroup.train.checkpoint import model_state, save_checkpoint
    from gradgroup.train.models import create_model

    h, w = size
    stem = work / f"{arch}_{h}x{w}"
    ckpt = stem.with_suffix(".pt")
    if not ckpt.exists():
        save_checkpoint(ckpt, model_state(create_model(arch), arch, preprocess=Preprocess(h, w)))
    out: dict[str, Path | str] = {}
    fp32 = stem.with_suffix(".onnx")
    if not fp32.exists():
        ok, msg = _gradgroup("export", str(ckpt), "--out", str(fp32), "--size", f"{h}x{w}")
        if not ok:
            return {p: f"export failed: {msg}" for p in precisions}
    out["fp32"] = fp32
    if "int8" in precisions:
        int8 = stem.with_suffix(".int8.onnx")
        if not int8.exists():
            ok, msg = _gradgroup("calib", str(fp32), "--out", str(int8), *calib_args)
            out["int8"] = int8 if ok else f"calib failed: {msg}"
        else:
            out["int8"] = int8
    return {p: out[p] for p in precisions}


def main(argv: list[str] | None = None) -> int:
    """Build, quantize and benchmark every (arch, size, precision); print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/latency_table"), help="work folder")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="HxW")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="timed seconds per model")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--calib-args", default="--no-eval --calib-frames 16",
                        help="extra flags for gradgroup calib")  # fmt: skip
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(threads=args.threads, duration=args.duration, warmup=args.warmup)
    cells: dict[tuple[str, str, str], str] = {}
    reports = []
    for size_text in args.sizes:
        size = parse_size(size_text)
        models: list[Path] = []
        keys: list[tuple[str, str, str]] = []
        for arch in args.archs:
            print(f"building {arch} {size_text} ...", file=sys.stderr)
            precisions = tuple(args.precisions)
            made = make_models(arch, size, args.out, precisions, args.calib_args.split())
            for prec, result in made.items():
                if isinstance(result, Path):
                    models.append(result)
                    keys.append((arch, size_text, prec))
                else:
                    cells[(arch, size_text, prec)] = result
        if not models:
            continue
        rows: list[BenchRow] = benchmark(models, cfg)
        info = system_info(cfg)
        reports.append(format_report(rows, info))
        write_json(args.out / f"bench_{size_text}.json", rows, info, cfg)
        base = rows[0].inference.p50
        for key, row in zip(keys, rows):
            cells[key] = f"{row.inference.p50:.1f} ms ({row.inference.p50 / base:.2f}x)"
    header = ["model"] + [f"{s} {p}" for s in args.sizes for p in args.precisions]
    table = [[a] + [cells.get((a, s, p), "-") for s in args.sizes for p in args.precisions]
             for a in args.archs]  # fmt: skip
    lines = header_lines(system_info(cfg))
    print("\n\n".join(reports))
    print("\n".join(["", *lines, "inference p50 (ratio to the first model of the size)", ""]))
    print(format_table(header, table))
    md = "\n\n".join([*(f"_{line}_" for line in lines), format_markdown(header, table)]) + "\n"
    write_text(args.out / "latency_table.md", md)
    print(f"latency table saved as {args.out / 'latency_table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
