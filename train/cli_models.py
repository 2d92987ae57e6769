"""``gradgroup models``: the architecture zoo with parameters and MACs at an input size."""

from __future__ import annotations

import argparse

from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import check_model_size, parse_size
from gradgroup.deploy.table import format_table

from .flops import count_model
from .models import ZOO, create_model

KINDS = ("dense", "grouped", "depthwise", "transposed")
EXAMPLES = """names: <encoder>[-sel<k>][-light]: erfnet, d (depthwise-separable), dg<g> (pointwise
convs in g groups), dg<g>s (+ channel shuffle); -sel<k> keeps the first k encoder blocks dense;
-light is the light-weight decoder. MACs count convolutions only.

examples:
  gradgroup models                                  # the zoo at 512x1024, 19 classes
  gradgroup models --size 256x512 --arch erfnet dg4-light
  gradgroup models --arch dg4s-sel3-light --classes 11 --json
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--size", default="512x1024", metavar="HxW", help="model input size HxW")
    parser.add_argument("--classes", type=int, default=19, help="number of classes")
    parser.add_argument(
        "--arch", nargs="+", metavar="NAME", default=list(ZOO),
        help="architectures to list (default: the zoo: " + ", ".join(ZOO) + ")",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print a JSON array instead of a table")


def list_models(names: list[str], size: tuple[int, int], num_classes: int = 19) -> list[dict]:
    """Parameters and MACs (total and by layer type) of each named architecture."""
    rows = []
    for name in names:
        count = count_model(create_model(name, num_classes), size)
        rows.append(
            {
                "name": name,
                "params": count.params,
                "macs": count.macs,
                **{f"macs_{k}": count.macs_by_type.get(k, 0) for k in KINDS},
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    size = check_model_size(parse_size(args.size))
    rows = list_models(args.arch, size, args.classes)
    if args.json:
        print(to_json(rows, indent=2))
        return 0
    base = rows[0]["macs"]
    table = [
        [
            r["name"],
            f"{r['params']:,}",
            f"{r['macs'] / 1e9:.3f}",
            *(f"{r[f'macs_{k}'] / 1e9:.3f}" for k in KINDS),
            f"{base / r['macs']:.1f}x",
        ]
        for r in rows
    ]
    header = ["model", "params", "GMACs", *(f"{k} GMACs" for k in KINDS), f"vs {rows[0]['name']}"]
    print(f"MACs at {size[0]}x{size[1]}, {args.classes} classes")
    print(format_table(header, table))
    return 0
