"""Alpha schedules for gradual grouping: pure functions of training progress.

Each schedule maps ``t`` in [0, 1] (progress through the decay span) to a factor in [0, 1] that
moves alpha from ``start`` (t = 0) to ``end`` (t = 1). ``blend`` gives alpha at a point of the
span (the trainer's plan counts it in epochs) and holds ``end`` after it, for the fine-tuning where
alpha is 0; ``AlphaSchedule`` counts the span in iterations.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

from gradgroup.deploy.errors import InputError

SCHEDULES: dict[str, Callable[[float], float]] = {}


def register(name: str) -> Callable[[Callable[[float], float]], Callable[[float], float]]:
    def wrap(fn: Callable[[float], float]) -> Callable[[float], float]:
        SCHEDULES[name] = fn
        return fn

    return wrap


@register("linear")
def linear(t: float) -> float:
    """Straight line from 1 to 0."""
    return 1.0 - t


@register("cosine")
def cosine(t: float) -> float:
    """Half cosine: slow start, fast middle, slow end."""
    return 0.5 * (1.0 + math.cos(math.pi * t))


@register("exponential")
def exponential(t: float, rate: float = 5.0) -> float:
    """exp(-rate t), rescaled so it ends exactly at 0."""
    return (math.exp(-rate * t) - math.exp(-rate)) / (1.0 - math.exp(-rate))


@register("step")
def step(t: float, steps: int = 4) -> float:
    """Staircase of ``steps`` equal drops; the last step lands on 0 at t = 1."""
    return 1.0 - min(math.floor(t * steps), steps) / steps


@dataclass(frozen=True)
class AlphaSchedule:
    """Alpha per iteration: from ``start`` to ``end`` between ``begin`` and ``begin + span``.

    After the span alpha stays at ``end`` (0 for fine-tuning as a true grouped model).
    """

    shape: str = "linear"
    span: int = 1000
    begin: int = 0
    start: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        check_schedule(self.shape, self.start, self.end)
        if self.span < 1:
            raise InputError(f"alpha span {self.span} must be at least 1 iteration")

    def __call__(self, iteration: int) -> float:
        return alpha_at(self, iteration)


def check_schedule(shape: str, start: float, end: float) -> None:
    """InputError unless ``shape`` is a known schedule and alpha falls from ``start`` to ``end``
    within [0, 1]."""
    if shape not in SCHEDULES:
        close = difflib.get_close_matches(shape, SCHEDULES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"unknown alpha schedule {shape!r}{hint} (choose from {', '.join(SCHEDULES)})"
        )
    if not (0.0 <= end <= start <= 1.0):
        raise InputError(f"alpha must fall within [0, 1]: start={start}, end={end}")


def alpha_at(schedule: AlphaSchedule, iteration: int) -> float:
    """Alpha at ``iteration`` (0-based) under ``schedule``."""
    t = (iteration - schedule.begin) / schedule.span
    return blend(schedule.shape, t, schedule.start, schedule.end)


def blend(shape: str, t: float, start: float, end: float) -> float:
    """Alpha at progress ``t`` through the span (clipped to [0, 1]) of schedule ``shape``."""
    t = min(max(t, 0.0), 1.0)
    return end + (start - end) * SCHEDULES[shape](1.0 if t > 1.0 - 1e-12 else t)
