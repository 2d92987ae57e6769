"""``gradgroup weights``: the shipped scene-pretrained weights — list, check, pack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.table import format_table

EXAMPLES = """examples:
  gradgroup weights                          # what is shipped, with the manifest's mIoU
  gradgroup weights --check                  # re-measure every file (sha256 and mIoU)
  gradgroup weights --pack runs/weights/d-light --name d-light.pt \\
      --command "gradgroup train --arch d-light ..."   # record a finished run
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--check", action="store_true",
                        help="re-measure every shipped file against the manifest")  # fmt: skip
    parser.add_argument("--pack", metavar="RUN", default=None,
                        help="add RUN/last.pt to the shipped weights (tensors only; default: "
                        "list them)")  # fmt: skip
    parser.add_argument("--name", default=None, help="file name for --pack (default ARCH.pt)")
    parser.add_argument("--command", action="append", default=[],
                        help="a command that produced the run (repeat, in order; default: "
                        "none)")  # fmt: skip
    parser.add_argument("--machine", default="",
                        help="where it was trained (CPU, threads; default: empty)")  # fmt: skip
    parser.add_argument("--folder", default=None, help="weights folder (default: the package's)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    from . import weights

    folder = Path(args.folder) if args.folder else None
    if args.pack:
        run_dir = Path(args.pack)
        name = args.name or f"{json.loads((run_dir / 'config.json').read_text())['arch']}.pt"
        entry = weights.pack(run_dir, name, tuple(args.command), args.machine, folder)
        print(f"weights packed: {entry.name} ({entry.bytes / 1e6:.1f} MB), mIoU "
              f"{100 * entry.miou:.2f}% on {weights.EVAL_IMAGES} scenes")  # fmt: skip
        return 0
    entries = weights.manifest(folder)
    measured = dict((e.name, m) for e, m in weights.check(folder)) if args.check else {}
    if args.json:
        rows = [{**e.to_dict(), **({"measured_miou": measured[e.name]} if measured else {})}
                for e in entries]  # fmt: skip
        print(to_json(rows, indent=2))
        return 0
    header = ["file", "arch", "mIoU %", "MB", "iterations", "train min", "sha256"]
    if measured:
        header.insert(3, "measured %")
    body = []
    for e in entries:
        row = [e.name, e.arch, f"{100 * e.miou:.2f}", f"{e.bytes / 1e6:.1f}", str(e.iterations),
               f"{e.train_minutes:.0f}", e.sha256[:12]]  # fmt: skip
        if measured:
            row.insert(3, f"{100 * measured[e.name]:.2f}")
        body.append(row)
    print(format_table(header, body) if body else "no shipped weights")
    for e in entries:
        print(f"{e.name}: " + " && ".join(e.commands))
    if args.check:
        print(f"weights check passed: {len(entries)} files")
    return 0
