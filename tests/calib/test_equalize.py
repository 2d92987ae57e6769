"""Activation equalization: exact in float, equal ReLU ranges where the next conv is depthwise."""

import numpy as np
import pytest

from gradgroup.calib.equalize import channel_maxima, equalize, find_chains, scales
from gradgroup.calib.quantize import CalibConfig

C = 8
STRENGTH = np.array([1.0, 0.01, 0.1, 5.0, 0.5, 0.0, 2.0, 0.03], np.float32)  # channel 5: dead


def chain_model():
    """input -> conv (3->8) -> relu -> depthwise conv -> relu -> dense 1x1 (8->4) -> output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    wa = rng.standard_normal((C, 3, 3, 3)).astype(np.float32) * STRENGTH[:, None, None, None]
    ba = rng.uniform(0.0, 0.1, C).astype(np.float32) * STRENGTH
    ba[5] = -1.0  # never positive: the ReLU keeps it at 0
    wb = (rng.standard_normal((C, 1, 3, 3)) * rng.uniform(0.1, 3, (C, 1, 1, 1))).astype(np.float32)
    bb = rng.uniform(-0.1, 0.1, C).astype(np.float32)
    wc = rng.standard_normal((4, C, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((wa, "wa"), (ba, "ba"), (wb, "wb"), (bb, "bb"), (wc, "wc"))]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="A", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ra"], name="RA"),
        helper.make_node("Conv", ["ra", "wb", "bb"], ["b"], name="B", pads=[1, 1, 1, 1], group=C),
        helper.make_node("Relu", ["b"], ["rb"], name="RB"),
        helper.make_node("Conv", ["rb", "wc"], ["y"], name="Cv"),
    ]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def feeds(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


def run(model, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def test_equalization_keeps_the_function_and_evens_the_relu_ranges():
    import onnx

    model = chain_model()
    before = onnx.ModelProto()
    before.CopyFrom(model)
    chains = find_chains(model.graph)
    assert [(c.first.name, c.second.name, c.depthwise) for c in chains] == [
        ("A", "B", True), ("B", "Cv", False)
    ]  # fmt: skip
    calib = feeds(6, seed=1)
    old = channel_maxima(before, chains, calib)
    assert equalize(model, calib) == 2
    for feed in feeds(3, seed=2):  # the float model computes the same function
        np.testing.assert_allclose(run(model, feed), run(before, feed), rtol=1e-4, atol=1e-4)
    new = channel_maxima(model, find_chains(model.graph), calib)
    live = old["ra"] > old["ra"].max() / 64
    assert live.sum() >= 5 and not live[5]
    # Before a depthwise conv every live channel now reaches the tensor's maximum ...
    np.testing.assert_allclose(new["ra"][live], old["ra"].max(), rtol=1e-4)
    assert new["ra"][5] == old["ra"][5] == 0.0  # ... and a dead channel is left alone
    # ... before a dense one each channel goes halfway (square root of its shortfall).
    top = old["rb"].max()
    keep = old["rb"] > top / 64
    np.testing.assert_allclose(new["rb"][keep], np.sqrt(old["rb"][keep] * top), rtol=1e-3)


def test_scales_leave_weak_channels_and_split_the_range_for_dense_convs():
    maxima = np.array([4.0, 1.0, 0.01, 0.0], np.float32)
    assert scales(maxima, depthwise=True).tolist() == [1.0, 4.0, 1.0, 1.0]
    assert scales(maxima, depthwise=False).tolist() == [1.0, 2.0, 1.0, 1.0]
    assert scales(np.zeros(3, np.float32), depthwise=True).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, True), ({"power_of_2": True}, False), ({"per_channel": False}, False),
     ({"equalize": False}, False), ({"power_of_2": True, "equalize": True}, True)],
)  # fmt: skip
def test_equalization_is_on_with_per_channel_weights_unless_asked(kwargs, expected):
    assert CalibConfig(**kwargs).resolved().equalized is expected
