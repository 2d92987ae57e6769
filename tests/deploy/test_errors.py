"""The project's error helpers: one line out of any third-party exception."""

import onnx
import pytest

from gradgroup.deploy.errors import InputError, first_line
from gradgroup.deploy.graph.stats import graph_stats


@pytest.mark.parametrize(
    "exc, want",
    [
        (ValueError("bad shape\nTraceback detail"), "bad shape"),
        (RuntimeError("\n  \n  first real line  \nsecond"), "first real line"),
        (KeyError(), "KeyError"),
        (ValueError(""), "ValueError"),
        (RuntimeError("  \n\t\n"), "RuntimeError"),
    ],
)
def test_first_line_never_raises_and_names_empty_messages_by_type(exc, want):
    assert first_line(exc) == want


def test_an_empty_third_party_message_still_gives_a_one_line_input_error(tiny_onnx, monkeypatch):
    def fail(*args, **kwargs):
        raise onnx.shape_inference.InferenceError("")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", fail)
    with pytest.raises(InputError, match=r"shapes \(InferenceError\)$"):
        graph_stats(tiny_onnx)
