"""Graph rewrites around quantization: each checked for equality in ONNX Runtime before/after."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from gradgroup.calib.graph import op_census, quantized_ops, scales
from gradgroup.deploy.graph.rewrites.quant import (
    bn_to_depthwise_conv,
    fold_bn_into_conv_transpose,
    pow2_ceil,
    power_of_two_scales,
)


def _bn(name, channels, rng):
    return [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, channels).astype(np.float32), f"{name}.g"),
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, channels).astype(np.float32), f"{name}.b"),
        numpy_helper.from_array(rng.uniform(-0.3, 0.3, channels).astype(np.float32), f"{name}.m"),
        numpy_helper.from_array(rng.uniform(0.5, 2.0, channels).astype(np.float32), f"{name}.v"),
    ]


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _model(nodes, inits, in_shape, out_shape):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fold_bn_into_grouped_conv_transpose_keeps_the_function():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")  # 2 groups
    b = numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "b")
    nodes = [
        helper.make_node(
            "ConvTranspose",
            ["x", "w", "b"],
            ["t"],
            group=2,
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            output_padding=[1, 1],
        ),
        helper.make_node(
            "BatchNormalization", ["t", "bn.g", "bn.b", "bn.m", "bn.v"], ["y"], epsilon=1e-3
        ),
    ]
    model = _model(nodes, [w, b, *_bn("bn", 6, rng)], [1, 4, 5, 6], [1, 6, 10, 12])
    x = rng.normal(size=(1, 4, 5, 6)).astype(np.float32)
    before = _run(model, x)
    assert fold_bn_into_conv_transpose(model) == 1
    assert op_census(model) == {"ConvTranspose": 1}
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-4, atol=1e-5)


def test_bn_after_concat_becomes_depthwise_conv_with_same_output():
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["p", "a"], ["c"], axis=1),
        helper.make_node("BatchNormalization", ["c", "bn.g", "bn.b", "bn.m", "bn.v"], ["y"]),
    ]
    model = _model(nodes, _bn("bn", 6, rng), [1, 3, 8, 8], [1, 6, 4, 4])
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    before = _run(model, x)
    assert bn_to_depthwise_conv(model) == 1
    census = op_census(model)
    assert "BatchNormalization" not in census and census["Conv"] == 1
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-5, atol=1e-5)


def test_pow2_ceil_rounds_up_to_powers_of_two():
    got = pow2_ceil(np.array([0.3, 0.25, 1.0, 3e-3, 5.0]))
    np.testing.assert_array_equal(got, np.array([0.5, 0.25, 1.0, 2**-8, 8.0], np.float32))


def test_power_of_two_scales_on_a_quantized_model(quantized):
    _, path = quantized
    model = onnx.load(str(path))
    fp_before = _run_model_path(path)
    assert power_of_two_scales(model) > 0
    for name, value in scales(model).items():
        exponents = np.log2(value.astype(np.float64))
        assert np.all(exponents == np.round(exponents)), name
    # Bias scales follow input scale x weight scale, so ORT's integer Conv stays exact.
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    checked = 0
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2):
        dq_x, dq_w, dq_b = (producers.get(i) for i in conv.input[:3])
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in (dq_x, dq_w, dq_b)):
            continue
        expect = inits[dq_x.input[1]] * inits[dq_w.input[1]]
        np.testing.assert_allclose(inits[dq_b.input[1]], expect, rtol=1e-6)
        checked += 1
    assert checked > 50
    out = _run_model_proto(model)
    agreement = np.mean(out.argmax(1) == fp_before.argmax(1))
    assert agreement > 0.8  # coarser scales, same function


def _input(shape=(1, 3, 32, 64)):
    return np.random.default_rng(3).normal(size=shape).astype(np.float32)


def _run_model_path(path):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: _input()})[0]


def _run_model_proto(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: _input()})[0]


def test_quantized_ops_tells_float_from_quantized(tiny_onnx, quantized):
    assert not quantized_ops(onnx.load(str(tiny_onnx)))
    found = quantized_ops(onnx.load(str(quantized[1])))
    assert found["QuantizeLinear"] > 0 and found["DequantizeLinear"] > 0
