"""``gradgroup check``: list what TIDL 11.0 would not run on the accelerator (torch-free)."""

from __future__ import annotations

import argparse

from .fileio import to_json

EXAMPLES = """examples:
  gradgroup check dg4.onnx
  gradgroup check dg4.onnx --json

exit code 0: no unsupported node (unverified ones are listed); 1: unsupported nodes found.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="ONNX model to check")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def run(args: argparse.Namespace) -> int:
    from .graph.tidl_check import UNSUPPORTED, UNVERIFIED, check_tidl, count_findings
    from .table import format_table

    findings = check_tidl(args.model)
    counts = count_findings(findings)
    if args.json:
        print(
            to_json(
                {"model": args.model, **counts, "findings": [f.to_dict() for f in findings]},
                indent=2,
            )
        )
    else:
        if findings:
            rows = [[f.node, f.op, f.rule, f.severity, f.message] for f in findings]
            print(format_table(["node", "op", "rule", "severity", "message"], rows))
        print(
            f"TIDL check: {counts[UNSUPPORTED]} unsupported, {counts[UNVERIFIED]} unverified "
            f"nodes in {args.model}"
        )
    return 1 if counts[UNSUPPORTED] else 0
