"""Every graph rewrite computes exactly what the graph computed before (ORT, random input)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import run_ort

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.graph.core import attr
from gradgroup.deploy.graph.rewrites import (
    NUMERIC_REWRITES,
    ORT_FLOAT_REWRITES,
    ORT_QDQ_REWRITES,
    REWRITES,
    SHUFFLE_REWRITES,
    TIDL_REWRITES,
    apply_rewrites,
    rewrite_names,
)
from gradgroup.deploy.graph.rewrites.shuffle import shuffle_permutation

RNG = np.random.default_rng(0)


def _model(nodes, inits, in_shape, out_shape, opset=17):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _assert_exact(model, rewrite, x, expect_changed, tol=1e-5):
    before = run_ort(model, x)
    changed = apply_rewrites(model, [rewrite])[rewrite]
    onnx.checker.check_model(model)
    after = run_ort(model, x)
    assert changed == expect_changed
    assert before.shape == after.shape
    np.testing.assert_allclose(after, before, rtol=0, atol=tol)
    return model


@pytest.mark.parametrize(
    "kernel,pads,dilations",
    [
        ((3, 1), [1, 0, 1, 0], [1, 1]),
        ((1, 3), [0, 1, 0, 1], [1, 1]),
        ((3, 1), [4, 0, 4, 0], [4, 1]),
        ((1, 3), [0, 2, 0, 2], [1, 2]),
        ((5, 1), [2, 0, 2, 0], [1, 1]),
        ((1, 3), [0, 0, 0, 0], [1, 1]),
    ],
)
def test_depthwise_to_square_is_exact(kernel, pads, dilations):
    c, h, w = 8, 12, 20
    wt = RNG.standard_normal((c, 1, *kernel)).astype(np.float32)
    b = RNG.standard_normal(c).astype(np.float32)
    conv = helper.make_node(
        "Conv",
        ["x", "w", "b"],
        ["y"],
        group=c,
        kernel_shape=list(kernel),
        pads=pads,
        dilations=dilations,
    )
    oh = h + pads[0] + pads[2] - dilations[0] * (kernel[0] - 1)
    ow = w + pads[1] + pads[3] - dilations[1] * (kernel[1] - 1)
    model = _model([conv], {"w": wt, "b": b}, [1, c, h, w], [1, c, oh, ow])
    x = RNG.standard_normal((1, c, h, w)).astype(np.float32)
    _assert_exact(model, "depthwise_to_square", x, 1)
    k = max(kernel)
    assert list(attr(model.graph.node[0], "kernel_shape")) == [k, k]


def test_depthwise_to_square_leaves_grouped_and_square_convs():
    c = 8
    nodes = [
        helper.make_node(
            "Conv", ["x", "w1"], ["t"], group=4, kernel_shape=[3, 1], pads=[1, 0, 1, 0]
        ),
        helper.make_node(
            "Conv", ["t", "w2"], ["y"], group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
    ]
    inits = {
        "w1": RNG.standard_normal((c, 2, 3, 1)).astype(np.float32),
        "w2": RNG.standard_normal((c, 1, 3, 3)).astype(np.float32),
    }
    model = _model(nodes, inits, [1, c, 6, 6], [1, c, 6, 6])
    _assert_exact(
        model, "depthwise_to_square", RNG.standard_normal((1, c, 6, 6)).astype(np.float32), 0
    )


@pytest.mark.parametrize(
    "pads,out_pad", [([1, 1, 1, 1], [1, 1]), ([0, 0, 0, 0], [0, 0]), ([1, 1, 1, 1], [0, 0])]
)
def test_convtranspose_3x3_to_4x4_is_exact(pads, out_pad):
    cin, cout, h, w = 6, 5, 7, 9
    wt = RNG.standard_normal((cin, cout, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(cout).astype(np.float32)
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w", "b"],
        ["y"],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=pads,
        output_padding=out_pad,
    )
    oh = 2 * (h - 1) + 3 - pads[0] - pads[2] + out_pad[0]
    ow = 2 * (w - 1) + 3 - pads[1] - pads[3] + out_pad[1]
    model = _model([node], {"w": wt, "b": b}, [1, cin, h, w], [1, cout, oh, ow])
    x = RNG.standard_normal((1, cin, h, w)).astype(np.float32)
    _assert_exact(model, "convtranspose_to_even", x, 1)
    node = model.graph.node[0]
    assert list(attr(node, "kernel_shape")) == [4, 4]
    if pads == [1, 1, 1, 1] and out_pad == [1, 1]:  # ERFNet's upsampler: plain 4x4 s2 p1
        assert list(attr(node, "pads")) == [1, 1, 1, 1]
        assert not any(attr(node, "output_padding", [0, 0]))


def _shuffle_model(c=12, groups=3, h=4, w=5):
    nodes = [
        helper.make_node("Reshape", ["x", "s5"], ["a"]),
        helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "s4"], ["y"]),
    ]
    inits = {
        "s5": np.array([1, groups, c // groups, h, w], np.int64),
        "s4": np.array([1, c, h, w], np.int64),
    }
    return _model(nodes, inits, [1, c, h, w], [1, c, h, w])


def test_shuffle_permutation_matches_numpy_shuffle():
    x = np.arange(12)
    expected = x.reshape(3, 4).T.reshape(-1)  # (g, c/g) -> transpose -> flatten
    np.testing.assert_array_equal(x[shuffle_permutation(12, 3)], expected)


def test_shuffle_to_gather_and_back_are_exact():
    model = _shuffle_model()
    x = RNG.standard_normal((1, 12, 4, 5)).astype(np.float32)
    _assert_exact(model, "shuffle_to_gather", x, 1, tol=0)
    assert [n.op_type for n in model.graph.node] == ["Gather"]
    _assert_exact(model, "gather_to_shuffle", x, 1, tol=0)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Transpose", "Reshape"]


def test_gather_to_shuffle_ignores_other_permutations():
    c = 6
    node = helper.make_node("Gather", ["x", "idx"], ["y"], axis=1)
    model = _model(
        [node], {"idx": np.array([5, 4, 3, 2, 1, 0], np.int64)}, [1, c, 2, 2], [1, c, 2, 2]
    )
    _assert_exact(
        model, "gather_to_shuffle", RNG.standard_normal((1, c, 2, 2)).astype(np.float32), 0
    )


def test_remove_noops_is_exact():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Dropout", ["a"], ["b"]),
        helper.make_node("Identity", ["b"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    model = _model(nodes, {}, [1, 2, 3, 3], [1, 2, 3, 3])
    _assert_exact(model, "remove_noops", RNG.standard_normal((1, 2, 3, 3)).astype(np.float32), 2)
    assert [n.op_type for n in model.graph.node] == ["Relu", "Relu"]


def test_registry_lists_every_rewrite_and_rejects_unknown_names():
    assert {
        "shuffle_to_gather", "gather_to_shuffle", "remove_noops", "depthwise_to_square",
        "convtranspose_to_even", "dense_pointwise", "convtranspose_to_subpixel",
        "fold_bn_into_conv_transpose", "bn_to_depthwise_conv", "power_of_two_scales",
        "float_maxpool_on_input", "dequantize_after_movement",
    } <= set(REWRITES)  # fmt: skip
    assert all(r.doc for r in REWRITES.values())
    with pytest.raises(InputError, match="unknown rewrite"):
        apply_rewrites(_shuffle_model(), ["no_such_rewrite"])


def test_pipelines_name_rewrites_of_their_stage_and_target():
    pipelines = {
        ("float", "tidl"): TIDL_REWRITES,
        ("float", "cpu"): ORT_FLOAT_REWRITES,
        ("qdq", "cpu"): ORT_QDQ_REWRITES,
        ("float", "any"): NUMERIC_REWRITES
        + tuple(n for names in SHUFFLE_REWRITES.values() for n in names),
    }
    for (stage, target), names in pipelines.items():
        for name in names:
            assert REWRITES[name].stage == stage, name
            assert REWRITES[name].target in ("any", target), name
    assert "dequantize_after_movement" in rewrite_names(stage="qdq", target="cpu")
    assert "dequantize_after_movement" not in rewrite_names(stage="float")
    # A QDQ rewrite on a float graph is refused by name, before it runs.
    with pytest.raises(InputError, match="runs on the qdq graph"):
        apply_rewrites(_shuffle_model(), ["dequantize_after_movement"], stage="float")


def test_tiny_weights_are_flushed_and_nothing_else_changes():
    w = RNG.standard_normal((8, 4, 3, 3)).astype(np.float32)
    w.flat[:5] = [1e-40, -3e-39, 1e-33, 0.0, 2e-20]  # two denormals, a tiny normal, 0, kept
    b = np.full(8, 1e-39, np.float32)  # eight more
    model = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        {"w": w, "b": b}, [1, 4, 6, 6], [1, 8, 6, 6],
    )  # fmt: skip
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)
    _assert_exact(model, "flush_tiny_weights", x, expect_changed=11, tol=0)
    after = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert list(after["w"].flat[:5]) == [0.0, 0.0, 0.0, 0.0, np.float32(2e-20)]
    np.testing.assert_array_equal(after["w"].flat[5:], w.flat[5:])
    assert not after["b"].any()
    assert apply_rewrites(model, ["flush_tiny_weights"]) == {"flush_tiny_weights": 0}
