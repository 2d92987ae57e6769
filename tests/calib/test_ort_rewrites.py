"""The ORT int8 rewrites compute exactly what the graph computed before (ORT, random input)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import run_ort

from gradgroup.deploy.graph.rewrites import ort as R

RNG = np.random.default_rng(0)


def _model(nodes, inits, in_shape):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _check(model, rewrite, x, expect, tol=1e-5):
    before = run_ort(model, x)
    assert rewrite(model) == expect
    onnx.checker.check_model(model)
    after = run_ort(model, x)
    np.testing.assert_allclose(after, before, rtol=0, atol=tol)
    return [n.op_type for n in model.graph.node]


def _conv(name, x, y, cout, cin_g, group=1, k=1):
    w = RNG.standard_normal((cout, cin_g, k, k)).astype(np.float32)
    b = RNG.standard_normal(cout).astype(np.float32)
    node = helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y], group=group,
                            kernel_shape=[k, k], pads=[k // 2] * 4)  # fmt: skip
    return node, {f"{name}_w": w, f"{name}_b": b}


def test_dense_pointwise_is_exact_and_skips_depthwise_and_many_groups():
    c = 16
    n1, i1 = _conv("a", "x", "t1", c, c // 4, group=4)
    n2, i2 = _conv("b", "t1", "t2", c, 1, group=c, k=3)  # depthwise: left alone
    n3, i3 = _conv("c", "t2", "y", c, c // 8, group=8)  # 8 groups: left alone
    model = _model([n1, n2, n3], {**i1, **i2, **i3}, [1, c, 6, 10])
    x = RNG.standard_normal((1, c, 6, 10)).astype(np.float32)
    _check(model, R.dense_pointwise, x, 1)
    groups = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in model.graph.node]
    assert groups == [1, c, 8]


def test_absorb_channel_gather_through_relu_is_exact():
    c = 12
    perm = np.array([(j % 3) * 4 + j // 3 for j in range(c)], np.int64)  # a 3-group shuffle
    n1, i1 = _conv("a", "x", "t1", c, c)
    relu = helper.make_node("Relu", ["t1"], ["t2"])
    gather = helper.make_node("Gather", ["t2", "perm"], ["t3"], axis=1)
    n2, i2 = _conv("b", "t3", "t4", c, c)
    gather2 = helper.make_node("Gather", ["t4", "perm"], ["y"], axis=1)  # graph output
    model = _model([n1, relu, gather, n2, gather2], {**i1, **i2, "perm": perm}, [1, c, 5, 7])
    x = RNG.standard_normal((1, c, 5, 7)).astype(np.float32)
    ops = _check(model, R.absorb_channel_gather, x, 2)
    assert "Gather" not in ops


def test_absorb_channel_gather_leaves_grouped_producers_and_shared_tensors():
    c = 8
    perm = np.arange(c)[::-1].astype(np.int64)
    n1, i1 = _conv("a", "x", "t1", c, c // 2, group=2)  # grouped: rows cannot move freely
    gather = helper.make_node("Gather", ["t1", "perm"], ["t2"], axis=1)
    n2, i2 = _conv("b", "t2", "t3", c, c)
    gather2 = helper.make_node("Gather", ["t3", "perm"], ["t4"], axis=1)
    add = helper.make_node("Add", ["t3", "t4"], ["y"])  # t3 is read twice
    model = _model([n1, gather, n2, gather2, add], {**i1, **i2, "perm": perm}, [1, c, 4, 4])
    x = RNG.standard_normal((1, c, 4, 4)).astype(np.float32)
    _check(model, R.absorb_channel_gather, x, 0)


def test_depth_to_space_as_transposes_is_exact():
    c, s = 3, 2
    d2s = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=s, mode="DCR")
    model = _model([d2s], {}, [1, c * s * s, 5, 7])
    x = RNG.standard_normal((1, c * s * s, 5, 7)).astype(np.float32)
    ops = _check(model, R.depth_to_space_as_transposes, x, 1, tol=0)
    assert ops == ["Transpose", "Reshape", "Transpose", "Reshape", "Transpose"]


def test_depth_to_space_as_transposes_leaves_crd():
    d2s = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")
    model = _model([d2s], {}, [1, 8, 3, 3])
    assert R.depth_to_space_as_transposes(model) == 0


@pytest.mark.parametrize("cast, keepdims", [(TensorProto.UINT8, 1), (None, 0)])
def test_argmax_before_depth_to_space_is_exact(cast, keepdims):
    c, s, h, w = 5, 2, 6, 7
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["up"], blocksize=s, mode="DCR"),
        helper.make_node("ArgMax", ["up"], ["ids" if cast else "y"], axis=1, keepdims=keepdims),
    ]
    if cast:
        nodes.append(helper.make_node("Cast", ["ids"], ["y"], to=cast))
    out_type = cast or TensorProto.INT64
    out_shape = [1, 1, h * s, w * s] if keepdims else [1, h * s, w * s]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c * s * s, h, w])],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # Integer-valued logits with many ties: the first maximum must win in both graphs.
    x = RNG.integers(0, 3, (1, c * s * s, h, w)).astype(np.float32)
    before = run_ort(model, x)
    assert R.argmax_before_depth_to_space(model) == 1
    onnx.checker.check_model(model)
    after = run_ort(model, x)
    assert after.dtype == before.dtype and after.shape == before.shape
    np.testing.assert_array_equal(after, before)
    ops = [n.op_type for n in model.graph.node]
    assert "DepthToSpace" not in ops and ops.index("ArgMax") < ops.index("Reshape", 2)
    if cast:  # the class ids move as uint8, not int64
        assert ops.index("Cast") == ops.index("ArgMax") + 1


def test_argmax_model_quantizes_to_uint8_argmax_equal_to_logits_model(model_dir, quantized):
    from dataclasses import replace

    import onnxruntime as ort

    from gradgroup.calib.quantize import CalibConfig, quantize
    from gradgroup.deploy.metadata import read_meta, write_meta

    model = onnx.load(str(model_dir / "tiny.onnx"))
    logits = model.graph.output[0].name
    model.graph.node.extend([
        helper.make_node("ArgMax", [logits], ["ids64"], axis=1, keepdims=1),
        helper.make_node("Cast", ["ids64"], ["classes"], to=TensorProto.UINT8),
    ])  # fmt: skip
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("classes", TensorProto.UINT8, [1, 1, 32, 64])
    )
    meta = read_meta(model)
    write_meta(model, replace(meta, output="argmax"))
    path = model_dir / "tiny_argmax.onnx"
    onnx.save(model, str(path))
    (model_dir / "tiny_argmax.calib.npz").write_bytes((model_dir / "tiny.calib.npz").read_bytes())
    result = quantize(path, model_dir / "am" / "tiny_argmax.int8.onnx", CalibConfig(evaluate=False))
    ops = result.runtime["ops"]
    # No DequantizeLinear of the logits and no logits-sized transposes: only the class ids move.
    assert ops.get("ArgMax") == 1 and "DepthToSpace" not in ops
    assert result.runtime["float_islands"] < quantized[0].runtime["float_islands"]
    assert result.runtime["transposes"] < quantized[0].runtime["transposes"]
    x = RNG.standard_normal((1, 3, 32, 64)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p)).run(None, {"input": x})[0]  # noqa: E731
    classes, int8_logits = run(result.path), run(quantized[1])
    assert classes.dtype == np.uint8 and classes.shape == (1, 1, 32, 64)
    np.testing.assert_array_equal(classes[:, 0], int8_logits.argmax(1))


def _qdq(name, x, y, scale, zp):
    """Q then DQ of ``x`` with scale/zero point initializers; returns nodes and initializers."""
    nodes = [
        helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
        helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [y]),
    ]
    return nodes, {f"{name}_s": np.float32(scale), f"{name}_z": np.uint8(zp)}


def test_float_maxpool_on_input_is_exact():
    q1, i1 = _qdq("in", "x", "xd", 0.02, 100)
    pool = helper.make_node("MaxPool", ["xd"], ["p"], kernel_shape=[2, 2], strides=[2, 2])
    q2, _ = _qdq("in", "p", "y", 0.02, 100)
    q2[0].output[0], q2[1].input[0] = "pq", "pq"
    model = _model([*q1, pool, *q2], i1, [1, 3, 8, 12])
    x = RNG.standard_normal((1, 3, 8, 12)).astype(np.float32)
    ops = _check(model, R.float_maxpool_on_input, x, 1, tol=0)
    assert ops == ["MaxPool", "QuantizeLinear", "DequantizeLinear"]


def test_float_maxpool_on_input_needs_equal_qparams():
    q1, i1 = _qdq("in", "x", "xd", 0.02, 100)
    pool = helper.make_node("MaxPool", ["xd"], ["p"], kernel_shape=[2, 2], strides=[2, 2])
    q2, i2 = _qdq("out", "p", "y", 0.03, 100)
    model = _model([*q1, pool, *q2], {**i1, **i2}, [1, 3, 8, 12])
    assert R.float_maxpool_on_input(model) == 0


def test_dequantize_after_movement_is_exact():
    q1, i1 = _qdq("a", "x", "xd", 0.05, 7)
    d2s = helper.make_node("DepthToSpace", ["xd"], ["y"], blocksize=2, mode="DCR")
    model = _model([*q1, d2s], i1, [1, 8, 3, 5])
    x = RNG.standard_normal((1, 8, 3, 5)).astype(np.float32)
    ops = _check(model, R.dequantize_after_movement, x, 1, tol=0)
    assert ops == ["QuantizeLinear", "DepthToSpace", "DequantizeLinear"]


@pytest.mark.parametrize(
    "k,s,pad,out_pad",
    [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (3, 3, 0, 0)],  # light head, ERFNet, others
)
def test_convtranspose_to_subpixel_is_exact(k, s, pad, out_pad):
    cin, cout, h, w = 5, 7, 6, 9
    wt = RNG.standard_normal((cin, cout, k, k)).astype(np.float32)
    b = RNG.standard_normal(cout).astype(np.float32)
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["t"], strides=[s, s],
                         pads=[pad] * 4, output_padding=[out_pad] * 2, kernel_shape=[k, k]),
        helper.make_node("Relu", ["t"], ["y"]),
    ]  # fmt: skip
    model = onnx.shape_inference.infer_shapes(_model(nodes, {"w": wt, "b": b}, [1, cin, h, w]))
    x = RNG.standard_normal((1, cin, h, w)).astype(np.float32)
    ops = _check(model, R.convtranspose_to_subpixel, x, 1)
    assert ops == ["Conv", "Relu", "DepthToSpace"]  # the Relu moved onto the conv
    onnx.shape_inference.infer_shapes(model, strict_mode=True)  # no stale shape left behind


def test_convtranspose_to_subpixel_leaves_grouped_and_odd_lengths():
    c = 4
    nodes = [
        helper.make_node("ConvTranspose", ["x", "wg"], ["t"], strides=[2, 2], group=2,
                         kernel_shape=[2, 2]),  # grouped
        helper.make_node("ConvTranspose", ["t", "w"], ["y"], strides=[2, 2], kernel_shape=[3, 3]),
    ]  # fmt: skip
    inits = {
        "wg": RNG.standard_normal((c, c // 2, 2, 2)).astype(np.float32),
        "w": RNG.standard_normal((c, c, 3, 3)).astype(np.float32),  # output 2n + 1, not 2n
    }
    model = _model(nodes, inits, [1, c, 3, 3])
    assert R.convtranspose_to_subpixel(model) == 0


def test_uint8_input_model_keeps_its_normalization_and_input_pool_in_float(model_dir, tmp_path):
    from dataclasses import replace

    from gradgroup.calib.quantize import CalibConfig, quantize
    from gradgroup.deploy.metadata import read_meta, write_meta
    from gradgroup.deploy.runtime import Segmenter

    # The tiny model with export's --input uint8 prologue: Cast -> Sub(mean) -> Mul(1/std).
    model = onnx.load(str(model_dir / "tiny.onnx"))
    net_in = model.graph.input[0]
    shape = [d.dim_value for d in net_in.type.tensor_type.shape.dim]
    meta = read_meta(model)
    pre = meta.preprocess
    mean, std = (np.array(v, np.float32).reshape(1, 3, 1, 1) * 255 for v in (pre.mean, pre.std))
    model.graph.initializer.extend(
        [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(1 / std, "inv_std")]
    )
    prologue = [
        helper.make_node("Cast", ["raw"], ["raw_f"], name="Cast", to=TensorProto.FLOAT),
        helper.make_node("Sub", ["raw_f", "mean"], ["centred"], name="Sub"),
        helper.make_node("Mul", ["centred", "inv_std"], [net_in.name], name="Mul"),
    ]
    nodes = prologue + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info("raw", TensorProto.UINT8, shape))
    write_meta(model, replace(meta, input_dtype="uint8"))
    path = model_dir / "tiny_u8.onnx"
    onnx.save(model, str(path))
    (model_dir / "tiny_u8.calib.npz").write_bytes((model_dir / "tiny.calib.npz").read_bytes())

    out = tmp_path / "tiny_u8.int8.onnx"
    quantize(path, out, CalibConfig(evaluate=False))
    seg = Segmenter(out, threads=1, optimized_model_path=tmp_path / "runs.onnx")
    graph = onnx.load(str(tmp_path / "runs.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert {"Sub", "Mul"} <= set(ops) and "QLinearMul" not in ops  # normalization in float
    pools = [n for n in graph.node if n.op_type == "MaxPool"]  # NCHW uint8 pools are slow
    assert len(pools) == 1 and pools[0].input[0] == net_in.name
    ids = seg.predict_rgb(RNG.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    assert ids.shape == (32, 64) and ids.max() < 19


def test_quantize_applies_the_ort_rewrites_by_default(quantized, model_dir, tmp_path):
    from gradgroup.calib.quantize import CalibConfig, quantize

    result, _ = quantized  # the tiny dg4-light, default settings
    ops = result.runtime["ops"]
    assert result.settings.ort_rewrites is True
    # The output ConvTranspose became an int8 sub-pixel conv; only the output DQ and the light
    # decoder's two bilinear Resizes (which ORT does not fuse) are left in float.
    assert "ConvTranspose" not in ops and "DepthToSpace" not in ops
    assert result.runtime["float_islands"] <= 3
    plain = quantize(
        model_dir / "tiny.onnx",
        tmp_path / "plain.int8.onnx",
        CalibConfig(evaluate=False, ort_rewrites=False),
    )
    assert plain.settings.ort_rewrites is False
    assert plain.runtime["ops"].get("ConvTranspose") == 1
    assert plain.runtime["float_islands"] > result.runtime["float_islands"]


def test_skip_rewrites_leaves_out_exactly_the_named_ones_and_records_them(
    quantized, model_dir, tmp_path
):
    from gradgroup.calib.quantize import CalibConfig, quantize
    from gradgroup.deploy.errors import InputError
    from gradgroup.deploy.metadata import read_meta

    skip = ("convtranspose_to_subpixel",)
    result = quantize(
        model_dir / "tiny.onnx", tmp_path / "skip.int8.onnx",
        CalibConfig(evaluate=False, skip_rewrites=skip),
    )  # fmt: skip
    assert result.runtime["ops"].get("ConvTranspose") == 1  # the output conv stayed transposed
    quant = read_meta(onnx.load(str(result.path))).extra["quantization"]
    assert quant["ort_rewrites"] is True and quant["skipped_rewrites"] == list(skip)
    with pytest.raises(InputError, match="not an ORT rewrite"):
        CalibConfig(skip_rewrites=("shuffle_to_gather",))


def test_segmenter_keeps_the_input_maxpool_float_for_rewritten_models(quantized, tmp_path):
    from gradgroup.deploy.runtime import Segmenter

    _, path = quantized
    # ORT's QDQ propagation would move the input Q in front of the MaxPool (a slow NCHW uint8
    # pool); the Segmenter disables it for these models: the graph it runs pools the float input.
    seg = Segmenter(path, threads=1, optimized_model_path=tmp_path / "runs.onnx")
    pools = [n for n in onnx.load(str(tmp_path / "runs.onnx")).graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1 and pools[0].input[0] == "input"
    assert seg.predict_rgb(np.zeros((32, 64, 3), np.uint8)).shape == (32, 64)
