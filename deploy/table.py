"""Plain-text and markdown tables for results people compare."""

from __future__ import annotations

from collections.abc import Sequence


def _widths(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[int]:
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    return [max(len(row[i]) for row in cells) for i in range(len(header))]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned text table: first column left-aligned, the rest right-aligned."""
    widths = _widths(header, rows)

    def line(cells: Sequence[object]) -> str:
        out = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """GitHub-flavoured markdown table."""
    lines = [
        "| " + " | ".join(map(str, header)) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)
