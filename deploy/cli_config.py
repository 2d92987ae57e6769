"""Parsed flags -> a config dataclass, by field name (the flags' dests are the fields' names)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_args(
    cls: type[T], args: argparse.Namespace, renamed: Mapping[str, str] | None = None, **overrides
) -> T:
    """``cls(...)`` from every parsed flag whose dest (or ``renamed[dest]``) is a field of ``cls``.

    Repeatable flags (lists) become tuples, as the frozen configs store them; ``overrides`` are
    values the command computes itself (a parsed size, an inverted switch) and win.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for dest, value in vars(args).items():
        field = (renamed or {}).get(dest, dest)
        if field in names:
            values[field] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    return cls(**values)
