"""Do FLOPs become latency, per execution provider? Every goal measured side by side in one run.

For each architecture and size this script exports a checkpoint with the real exporter
(``export_onnx``) and quantizes it with the real calibration (``quantize``, ``evaluate=False``),
then benchmarks every model on every provider with ``deploy.bench.benchmark`` (2 threads) in
``--rounds`` interleaved rounds, so a load change on a shared machine hits every model and
provider alike. Each figure is the minimum over rounds of the round's median: load only ever adds
time, so the least-disturbed round is the best estimate of the model's own speed.

Providers are gradgroup's names (``cpu``: ONNX Runtime's kernels; ``openvino``: Intel's plugin,
f32 precision hint) plus ``openvino+bf16`` (the plugin with OpenVINO's reduced precision, the
default it would pick on AVX512-BF16/AMX CPUs; never used unless named). The default ``--form
classmap`` is the deployment form (uint8 frame in, class map out); ``frame`` is the whole frame
(preprocess + inference + postprocess), ``inference`` the session run alone.

Goals 1-5 are issue 9's, on ``cpu``: (1) int8 >= 1.8x faster than fp32 for every
grouped/depthwise model; (2) a shuffled model within 10 % of its twin; (3) dg4-light int8 >= 12x
faster than ERFNet fp32; (4) dg4-light or dg4s-light int8 at 30 fps (inference); (5) int8 argmax
agreement with fp32 >= 98 % and a clean ``--target tidl`` export. Goals 6-7 are issue 15's, per
provider: (6) dg4-light or dg4s-light int8 at 30 fps for the whole frame at the largest size;
(7) dg4-light >= 4x faster than ERFNet at the same precision on the same provider.

With trained weights (``--checkpoint-dir DIR``: ``DIR/<arch>/best.pt`` or ``DIR/<arch>.pt``, e.g.
the shipped ``weights/``) it also scores each trained model at its training size on every
provider: mIoU on held-out scenes and argmax agreement with the cpu provider, and names the
fastest model per provider among those within ``--accuracy-margin`` of the best light model.

    python bench/perf_goals.py --out runs/perf_goals
    python bench/perf_goals.py --checkpoint-dir weights --sizes 512x1024 --zoo \\
        --providers cpu openvino openvino+bf16 --out runs/perf_providers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ARCHS = ("erfnet", "d", "dg4", "dg4s", "dg4-light", "dg4s-light")
ZOO = ("d-light", "dg2-light", "dg8-light", "dg4-sel4-light")  # added by --zoo
SIZES = ("256x512", "512x1024")
TWINS = (("dg4s", "dg4"), ("dg4s-light", "dg4-light"))
FAST_ARCHS = ("dg4-light", "dg4s-light")
LIGHT, BASELINE = "dg4-light", "erfnet"
BF16 = "+bf16"  # provider suffix: OpenVINO with INFERENCE_PRECISION_HINT=bf16


def provider_options(variant: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(gradgroup provider, OpenVINO options) of a provider variant such as ``openvino+bf16``."""
    if variant.endswith(BF16):
        return variant[: -len(BF16)], (("INFERENCE_PRECISION_HINT", "bf16"),)
    return variant, ()


def available_providers() -> list[str]:
    """cpu, and openvino when its plugin offers a device on this machine."""
    from gradgroup.deploy.errors import GradgroupError
    from gradgroup.deploy.session import openvino_devices

    try:
        openvino_devices()
    except GradgroupError as exc:
        print(f"openvino: not measured: {exc}", file=sys.stderr)
        return ["cpu"]
    return ["cpu", "openvino"]


def cpu_peak_gmacs() -> dict[str, float]:
    """Peak multiply-accumulates per second of this CPU (all cores, nominal clock) by precision.

    Per core and cycle: fp32 2 x 16 FMA lanes with AVX-512 on Intel (AMD Zen 4 splits 512-bit
    ops: 16), 16 with AVX2; int8 1024 with AMX-INT8, 2 x 64 with AVX512-VNNI (Zen 4: 64), 64 with
    AVX-VNNI, 32 otherwise; bf16 512 with AMX-BF16, 64 with AVX512-BF16. The clock is
    /proc/cpuinfo's "cpu MHz" (the nominal one in a VM; turbo makes real peaks higher).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                      if ln.startswith("flags")), []))  # fmt: skip
    mhz = next((float(ln.split(":", 1)[1]) for ln in text.splitlines()
                if ln.startswith("cpu MHz")), 0.0)  # fmt: skip
    amd = "AuthenticAMD" in text
    ports = 1 if amd else 2
    fp32 = 16 * ports if "avx512f" in flags else 16 if "avx2" in flags else 8
    if "amx_int8" in flags:
        int8 = 1024
    elif "avx512_vnni" in flags:
        int8 = 64 * ports
    else:
        int8 = 64 if "avx_vnni" in flags else 32
    bf16 = 512 if "amx_bf16" in flags else 32 * ports if "avx512_bf16" in flags else fp32
    cycles = (os.cpu_count() or 1) * mhz * 1e6 / 1e9
    return {"fp32": fp32 * cycles, "int8": int8 * cycles, "bf16": bf16 * cycles}


def trained_checkpoint(arch: str, ckpt_dir: Path | None) -> Path | None:
    """``DIR/<arch>/best.pt`` or ``DIR/<arch>.pt`` when it exists."""
    places = (ckpt_dir / arch / "best.pt", ckpt_dir / f"{arch}.pt") if ckpt_dir else ()
    return next((p for p in places if p.is_file()), None)


def checkpoint_for(arch: str, size: tuple[int, int], work: Path, ckpt_dir: Path | None) -> Path:
    """The trained checkpoint of ``arch``, else random weights (saved once)."""
    if (trained := trained_checkpoint(arch, ckpt_dir)) is not None:
        return trained
    import torch

    from gradgroup.deploy.preprocess import Preprocess
    from gradgroup.train.checkpoint import model_state, save_checkpoint
    from gradgroup.train.models import create_model

    path = work / f"{arch}.random.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(path, model_state(create_model(arch), arch, preprocess=Preprocess(*size)))
    return path


def build(arch: str, size: tuple[int, int] | None, work: Path, ckpt: Path, frames: int,
          form: str) -> dict:  # fmt: skip
    """fp32 export and int8 quantization (cached by file name); {precision: path or error}.

    ``size`` None exports at the checkpoint's own size (for the accuracy check).
    """
    from gradgroup.calib.quantize import CalibConfig, quantize
    from gradgroup.deploy.errors import GradgroupError
    from gradgroup.export.onnx_export import ExportConfig, export_onnx

    tag = "trained" if size is None else f"{size[0]}x{size[1]}"
    stem = work / (f"{arch}_{tag}" + ("_classmap" if form == "classmap" else ""))
    fp32, int8 = stem.with_suffix(".onnx"), stem.with_suffix(".int8.onnx")
    io = {"input": "uint8", "output": "argmax"} if form == "classmap" else {}
    try:
        if not fp32.exists():
            export_onnx(ckpt, fp32, ExportConfig(size=size, calib_frames=frames, verify_frames=1,
                                                 **io))  # fmt: skip
        if not int8.exists():
            quantize(fp32, int8, CalibConfig(evaluate=False, calib_frames=frames))
    except GradgroupError as exc:
        return {"error": f"{arch} {tag}: {exc}"}
    return {"fp32": fp32, "int8": int8}


def tidl_ok(arch: str, size: tuple[int, int], work: Path, ckpt: Path) -> str:
    """'pass' when ``--target tidl`` exports with no unsupported node, else the error."""
    from gradgroup.deploy.errors import GradgroupError
    from gradgroup.export.onnx_export import ExportConfig, export_onnx

    out = work / f"{arch}_{size[0]}x{size[1]}.tidl.onnx"
    if out.exists():
        return "pass"
    try:
        export_onnx(ckpt, out, ExportConfig(size=size, target="tidl", calib_data=None,
                                             verify_frames=1))  # fmt: skip
    except GradgroupError as exc:
        return str(exc)
    return "pass"


def agreement(fp32: Path, int8: Path, scenes: int, threads: int) -> float:
    """Percent of pixels where int8 and fp32 argmax agree, over ``scenes`` procedural scenes."""
    from gradgroup.deploy.runtime import Segmenter
    from gradgroup.deploy.scenes import render_scene

    a, b = Segmenter(fp32, threads=threads), Segmenter(int8, threads=threads)
    same = total = 0
    for seed in range(1000, 1000 + scenes):
        rgb = render_scene(seed, a.meta.preprocess.size)[0]
        pa, pb = a.predict_rgb(rgb), b.predict_rgb(rgb)
        same += int((pa == pb).sum())
        total += pa.size
    return 100.0 * same / total


def provider_accuracy(models: dict[str, Path], variants: list[str], scenes: int,
                      threads: int) -> dict[tuple[str, str], dict[str, float]]:  # fmt: skip
    """mIoU on ``scenes`` held-out scenes and argmax agreement with the cpu provider (same
    precision) of each {precision: model} on each provider variant; keyed (precision, variant)."""
    from gradgroup.deploy.datasets import open_dataset
    from gradgroup.deploy.metrics import ConfusionMatrix
    from gradgroup.deploy.runtime import Segmenter

    out: dict[tuple[str, str], dict[str, float]] = {}
    for precision, path in models.items():
        segs = {}
        for v in variants:
            provider, ov = provider_options(v)
            segs[v] = Segmenter(path, provider, threads=threads, ov_options=dict(ov) or None)
        first = next(iter(segs.values()))
        data = open_dataset("synthetic", "val", size=first.meta.preprocess.size, length=scenes)
        cms = {v: ConfusionMatrix(first.meta.classes.num_classes) for v in variants}
        same = dict.fromkeys(variants, 0)
        pixels = 0
        for i in range(len(data)):
            sample = data[i]
            ref = None
            for v, seg in segs.items():
                pred = seg.predict_rgb(sample.image)
                cms[v].update(sample.labels, pred)
                ref = pred if ref is None else ref  # the first variant (cpu) is the reference
                same[v] += int((pred == ref).sum())
            pixels += sample.labels.size
        for v in variants:
            out[(precision, v)] = {"miou": cms[v].result().miou, "agree_cpu": same[v] / pixels}
    return out


def bench_rounds(jobs: list[tuple[Path, str]], rounds: int, runs: int,
                 threads: int) -> dict[tuple[Path, str], dict]:  # fmt: skip
    """Interleaved rounds of ``benchmark`` over (model, provider variant) pairs; per pair the
    min and median over rounds of the round's inference and whole-frame p50, and the frame p99
    of the fastest round."""
    from gradgroup.deploy.bench import BenchConfig, benchmark

    seen: dict[tuple[Path, str], list] = {j: [] for j in jobs}
    for r in range(rounds):
        for model, variant in jobs if r % 2 == 0 else jobs[::-1]:  # no pair always runs first
            provider, ov = provider_options(variant)
            cfg = BenchConfig(threads=threads, runs=runs, warmup=0.5, progress=False,
                              provider=provider, ov_options=ov)  # fmt: skip
            row = benchmark([model], cfg)[0]
            if provider != "cpu" and row.providers[0] == "CPUExecutionProvider":
                print(f"  {model.name} on {variant} ran on {row.providers}", file=sys.stderr)
            seen[(model, variant)].append(row)
        print(f"  round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    out = {}
    for job, rows in seen.items():
        best = min(rows, key=lambda row: row.frame.p50)
        out[job] = {
            "inference": min(row.inference.p50 for row in rows),
            "inference_median": float(np.median([row.inference.p50 for row in rows])),
            "frame": best.frame.p50,
            "frame_p99": best.frame.p99,
            "macs": best.macs,
            "providers": best.providers,
        }
    return out


Key = tuple[str, str, str, str]  # arch, size, precision, provider variant


def issue9_goals(ms: dict[Key, float], sizes: list[str], agree: dict, tidl: dict,
                 trained: list[str]) -> list[list[str]]:  # fmt: skip
    """Issue 9's rows [goal, case, measured, target, verdict] on the cpu provider."""
    rows: list[list[str]] = []
    add = _adder(rows)

    def t(arch: str, size: str, prec: str) -> float | None:
        return ms.get((arch, size, prec, "cpu"))

    for size in sizes:
        for arch in ("d", "dg4", "dg4s", "dg4-light", "dg4s-light"):
            r = _ratio(t(arch, size, "fp32"), t(arch, size, "int8"))
            add("1 int8 speed-up", f"{arch} {size}", r, ">= 1.80x", r is not None and r >= 1.8)
    for size in sizes:
        for shuffled, plain in TWINS:
            for prec in ("fp32", "int8"):
                r = _ratio(t(shuffled, size, prec), t(plain, size, prec))
                add("2 shuffle cost", f"{shuffled}/{plain} {size} {prec}", r, "<= 1.10x",
                    r is not None and r <= 1.10)  # fmt: skip
    big = sizes[-1]
    r = _ratio(t(BASELINE, big, "fp32"), t(LIGHT, big, "int8"))
    add("3 vs ERFNet fp32", f"dg4-light int8 {big}", r, ">= 12x", r is not None and r >= 12)
    for arch in FAST_ARCHS:
        v = t(arch, big, "int8")
        add("4 30 fps", f"{arch} int8 {big} (ms)", v, "<= 33.3 ms", v is not None and v <= 33.3)
    for arch, value in agree.items():
        note = " (at its training size)" if arch in trained else " (random weights: not meaningful)"
        add("5 agreement %", f"{arch}{note}", value, ">= 98%", value >= 98.0)
    for arch, verdict in tidl.items():
        rows.append(
            ["5 TIDL checker", arch, verdict[:60], "pass", "PASS" if verdict == "pass" else "FAIL"]
        )
    return rows


def provider_goals(inference: dict[Key, float], frame: dict[Key, float], big: str,
                   variants: list[str]) -> list[list[str]]:  # fmt: skip
    """Issue 15's rows: 30 fps for the whole frame, and the light model >= 4x ERFNet, per
    provider; the 30 fps goal is met when the fastest provider meets it."""
    rows: list[list[str]] = []
    add = _adder(rows)
    best: tuple[float, str] | None = None
    for v in variants:
        times = [(frame[k], k[0]) for a in FAST_ARCHS if (k := (a, big, "int8", v)) in frame]
        value, arch = min(times) if times else (None, "-")
        add("6 30 fps frame", f"{arch} int8 {big} on {v} (ms)", value, "<= 33.3 ms",
            value is not None and value <= 33.3)  # fmt: skip
        if value is not None and (best is None or value < best[0]):
            best = (value, v)
    if best:
        add("6 30 fps frame", f"fastest provider: {best[1]} (ms)", best[0], "<= 33.3 ms",
            best[0] <= 33.3)  # fmt: skip
    for v in variants:
        for prec in ("fp32", "int8"):
            r = _ratio(
                inference.get((BASELINE, big, prec, v)), inference.get((LIGHT, big, prec, v))
            )
            add(
                "7 vs ERFNet, same precision",
                f"{prec} on {v}",
                r,
                ">= 4x",
                r is not None and r >= 4,
            )
    return rows


def fastest_accurate(frame: dict[Key, float], miou: dict[tuple[str, str, str], float], big: str,
                     variants: list[str], margin: float) -> list[list[str]]:  # fmt: skip
    """Per provider: the fastest (arch, precision) whose measured mIoU there is within ``margin``
    of the best light model's, and the fastest overall (any weights)."""
    rows = []
    light = [m for (a, _, _), m in miou.items() if a != BASELINE]
    floor = max(light) - margin if light else None
    for v in variants:
        cands = [(ms, a, p) for (a, s, p, vv), ms in frame.items() if s == big and vv == v]
        if not cands:
            continue
        ms, arch, prec = min(cands)
        accurate = [
            c for c in cands if floor is not None and miou.get((c[1], c[2], v), -1) >= floor
        ]
        if accurate:
            a_ms, a_arch, a_prec = min(accurate)
            pick = f"{a_arch} {a_prec}: {a_ms:.1f} ms, {100 * miou[(a_arch, a_prec, v)]:.1f} %"
        else:
            pick = "-"
        rows.append([v, pick, f"{arch} {prec}: {ms:.1f} ms"])
    return rows


def kernel_profiles(models: dict[tuple[str, str, str], Path], big: str, variants: list[str],
                    threads: int, runs: int = 10) -> list[str]:  # fmt: skip
    """Where the light model's and ERFNet's time goes at ``big`` on each provider: ORT's
    profiler for cpu, OpenVINO's layer counters (its own runtime, same CPU plugin) otherwise."""
    from op_profile import format_profile, openvino_profile, profile_model

    out = []
    for arch in (LIGHT, BASELINE):
        for prec in ("int8", "fp32"):
            if (path := models.get((arch, big, prec))) is None:
                continue
            for v in variants:
                provider, ov = provider_options(v)
                try:
                    if provider == "cpu":
                        prof = profile_model(path, runs, threads)
                    else:
                        prof = openvino_profile(path, runs, threads, dict(ov).get(
                            "INFERENCE_PRECISION_HINT", "f32"))  # fmt: skip
                except ImportError:
                    out.append(f"{v}: no layer counters (pip install openvino to see them)")
                    continue
                out += [f"--- {arch} {prec} {big} on {v}", format_profile(prof, top=5), ""]
    return out


def _adder(rows: list[list[str]]):
    def add(goal: str, case: str, value: float | None, target: str, ok: bool) -> None:
        shown = "-" if value is None else f"{value:.2f}"
        rows.append([goal, case, shown, target, "-" if value is None else "PASS" if ok else "FAIL"])

    return add


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/perf_goals"), help="work folder")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--zoo", action="store_true", help=f"also {', '.join(ZOO)}")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="HxW")
    parser.add_argument("--providers", nargs="+", metavar="NAME",
                        help="cpu, openvino, openvino+bf16 (default: cpu and, where its plugin "
                        "serves this CPU, openvino)")  # fmt: skip
    parser.add_argument(
        "--form",
        choices=("classmap", "logits"),
        default="classmap",
        help="classmap: uint8 in, argmax out (deployment); logits: float in/out",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="trained DIR/<arch>/best.pt or DIR/<arch>.pt (e.g. weights)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved benchmark rounds")
    parser.add_argument("--runs", type=int, default=10, help="timed frames per model per round")
    parser.add_argument("--calib-frames", type=int, default=16)
    parser.add_argument("--scenes", type=int, default=4, help="scenes for the agreement check")
    parser.add_argument(
        "--eval-scenes",
        type=int,
        default=100,
        help="held-out scenes for each trained model's mIoU per provider",
    )
    parser.add_argument(
        "--accuracy-margin",
        type=float,
        default=0.02,
        help="'accurate': mIoU within this of the best light model (fraction)",
    )
    parser.add_argument("--no-tidl", action="store_true", help="skip the TIDL export check")
    parser.add_argument("--profile", action="store_true",
                        help="per-kernel time of dg4-light and ERFNet at the largest size on "
                        "every provider (ORT's profiler, OpenVINO's layer counters)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.zoo:
        args.archs += [a for a in ZOO if a not in args.archs]
    args.providers = args.providers or available_providers()
    return args


def main(argv: list[str] | None = None) -> int:
    """Build, benchmark and judge; prints the latency, accuracy and goals tables."""
    from gradgroup.deploy.bench import cpu_model
    from gradgroup.deploy.preprocess import parse_size
    from gradgroup.deploy.session import provider_version
    from gradgroup.deploy.table import format_table

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes]
    trained_archs = [a for a in args.archs if trained_checkpoint(a, args.checkpoint_dir)]
    models: dict[tuple[str, str, str], Path] = {}
    agree: dict[str, float] = {}
    tidl: dict[str, str] = {}
    accuracy: dict[tuple[str, str, str], dict[str, float]] = {}
    for size, text in zip(sizes, args.sizes):
        for arch in args.archs:
            print(f"building {arch} {text} ...", file=sys.stderr)
            ckpt = checkpoint_for(arch, size, args.out, args.checkpoint_dir)
            made = build(arch, size, args.out, ckpt, args.calib_frames, args.form)
            if "error" in made:
                print(f"  {made['error']}", file=sys.stderr)
                continue
            models[(arch, text, "fp32")], models[(arch, text, "int8")] = made["fp32"], made["int8"]
            if size == sizes[0]:
                if arch not in trained_archs:  # trained ones: at their training size, below
                    agree[arch] = agreement(made["fp32"], made["int8"], args.scenes, args.threads)
                if not args.no_tidl:
                    tidl[arch] = tidl_ok(arch, size, args.out, ckpt)
    cache = args.out / f"accuracy_{args.eval_scenes}.json"  # scored once: it needs no quiet
    scored = json.loads(cache.read_text()) if cache.is_file() else {}
    for arch in trained_archs:
        ckpt = trained_checkpoint(arch, args.checkpoint_dir)
        made = build(arch, None, args.out, ckpt, args.calib_frames, "logits")
        if "error" in made:
            continue
        agree[arch] = agreement(made["fp32"], made["int8"], args.scenes, args.threads)
        todo = [v for v in args.providers if f"{arch} int8 {v}" not in scored]
        if todo and todo[0] != "cpu" and "cpu" in args.providers:
            todo = ["cpu", *[v for v in todo if v != "cpu"]]  # the reference comes first
        if todo:
            print(f"scoring {arch} on {', '.join(todo)} ...", file=sys.stderr)
            for (prec, v), m in provider_accuracy(made, todo, args.eval_scenes,
                                                  args.threads).items():  # fmt: skip
                scored[f"{arch} {prec} {v}"] = m
            cache.write_text(json.dumps(scored, indent=2) + "\n")
        for v in args.providers:
            for prec in ("fp32", "int8"):
                accuracy[(arch, prec, v)] = scored[f"{arch} {prec} {v}"]
    inference: dict[Key, float] = {}
    frame: dict[Key, float] = {}
    latency = []
    peaks = cpu_peak_gmacs()
    for text in args.sizes:
        jobs = [(models[k], v) for k in models if k[1] == text for v in args.providers]
        print(f"benchmarking {len(jobs)} model x provider pairs at {text} ...", file=sys.stderr)
        result = bench_rounds(jobs, args.rounds, args.runs, args.threads)
        for k in [k for k in models if k[1] == text]:
            for v in args.providers:
                r = result[(models[k], v)]
                key = (*k, v)
                inference[key], frame[key] = r["inference"], r["frame"]
                rate = r["macs"] / r["inference"] / 1e6
                peak = peaks.get("bf16" if v.endswith(BF16) and k[2] == "fp32" else k[2])
                latency.append([k[0], text, k[2], v, f"{r['inference']:.1f}",
                                f"{r['inference_median']:.1f}", f"{r['frame']:.1f}",
                                f"{r['frame_p99']:.1f}", f"{r['macs'] / 1e9:.2f}", f"{rate:.0f}",
                                f"{100 * rate / peak:.1f}" if peak else "-"])  # fmt: skip
    cpu_ms = {k: v for k, v in inference.items() if k[3] == "cpu"}
    rows = issue9_goals(cpu_ms, args.sizes, agree, tidl, trained_archs) if cpu_ms else []
    rows += provider_goals(inference, frame, args.sizes[-1], args.providers)
    miou = {k: m["miou"] for k, m in accuracy.items()}
    pick = fastest_accurate(frame, miou, args.sizes[-1], args.providers, args.accuracy_margin)
    engines = "; ".join(f"{v}: {provider_version(provider_options(v)[0])}" for v in args.providers)
    peak_text = ", ".join(f"{p} {g:.0f}" for p, g in peaks.items())
    text = [
        f"CPU {cpu_model()}, {args.threads} threads, load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs; {engines}",
        f"peak GMAC/s assumed (nominal clock): {peak_text}; form {args.form}; min over "
        f"{args.rounds} interleaved rounds of the median of {args.runs} frames",
        "",
        format_table(
            [
                "model",
                "size",
                "precision",
                "provider",
                "inference ms",
                "(median of rounds)",
                "frame ms",
                "frame p99",
                "GMACs",
                "GMAC/s",
                "% of peak",
            ],
            latency,
        ),  # fmt: skip
    ]
    if accuracy:
        acc_rows = [[a, p, v, f"{100 * m['miou']:.2f}", f"{100 * m['agree_cpu']:.2f}"]
                    for (a, p, v), m in accuracy.items()]  # fmt: skip
        text += ["", f"accuracy at the training size, {args.eval_scenes} held-out scenes:",
                 format_table(["model", "precision", "provider", "mIoU %",
                               "agreement with cpu %"], acc_rows)]  # fmt: skip
        text += ["", f"fastest per provider at {args.sizes[-1]} (accurate: mIoU within "
                 f"{100 * args.accuracy_margin:.0f} points of the best light model):",
                 format_table(["provider", "fastest accurate", "fastest (any weights)"],
                              pick)]  # fmt: skip
    text += ["", format_table(["goal", "case", "measured", "target", "verdict"], rows)]
    if args.profile:
        text += ["", "where the time goes (kernel ms per frame, share):", ""]
        text += kernel_profiles(models, args.sizes[-1], args.providers, args.threads)
    print("\n".join(text))
    (args.out / "perf_goals.txt").write_text("\n".join(text) + "\n")
    report = {
        "latency_ms": {" ".join(k): v for k, v in inference.items()},
        "frame_ms": {" ".join(k): v for k, v in frame.items()},
        "accuracy": {" ".join(k): v for k, v in accuracy.items()},
        "agreement": agree, "tidl": tidl, "trained": trained_archs, "peak_gmacs": peaks,
        "goals": rows, "fastest": pick,
    }  # fmt: skip
    (args.out / "perf_goals.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out / 'perf_goals.json'} and perf_goals.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
