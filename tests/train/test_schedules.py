"""Alpha schedules: each shape starts at 1, ends at 0, never rises, and fine-tunes at 0."""

import pytest

from gradgroup.deploy.errors import InputError
from gradgroup.train.schedules import SCHEDULES, AlphaSchedule, alpha_at, cosine, exponential, step


@pytest.mark.parametrize("shape", sorted(SCHEDULES))
def test_each_shape_goes_from_start_to_end_monotonically(shape):
    sched = AlphaSchedule(shape=shape, span=100, begin=10)
    values = [alpha_at(sched, i) for i in range(0, 150)]
    assert values[0] == 1.0 and values[10] == 1.0
    assert values[110] == 0.0 and values[-1] == 0.0  # fine-tuning phase stays at 0
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert 0.0 < values[60] < 1.0 or shape == "step"


def test_shapes_differ_in_the_middle():
    assert cosine(0.5) == pytest.approx(0.5)
    assert exponential(0.5) < 0.5  # fast early decay
    assert step(0.3) == 0.75 and step(0.99) == 0.25 and step(1.0) == 0.0


def test_start_end_range_and_call():
    sched = AlphaSchedule(shape="linear", span=10, start=0.8, end=0.2)
    assert sched(0) == pytest.approx(0.8) and sched(5) == pytest.approx(0.5) and sched(99) == 0.2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"shape": "cosin"}, "did you mean 'cosine'"),
        ({"span": 0}, "at least 1"),
        ({"start": 0.2, "end": 0.5}, "within"),
    ],
)
def test_bad_schedules_rejected(kwargs, match):
    with pytest.raises(InputError, match=match):
        AlphaSchedule(**kwargs)
