"""The TIDL 11.0 legality checker: one small graph per rule, the CLI, and no torch needed."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradgroup.cli import main
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.graph.tidl_check import UNSUPPORTED, UNVERIFIED, check_tidl, count_findings


def _model(nodes, inits=None, in_shape=(1, 8, 16, 16), out_shape=None, out_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rules(model):
    return {(f.rule, f.severity) for f in check_tidl(model)}


def _dw(kernel, dilations=(1, 1), strides=(1, 1), c=8):
    pads = [(k // 2) * d for k, d in zip(kernel, dilations)] * 2
    w = np.zeros((c, 1, *kernel), np.float32)
    node = helper.make_node(
        "Conv",
        ["x", "w"],
        ["y"],
        group=c,
        kernel_shape=list(kernel),
        pads=pads,
        dilations=list(dilations),
        strides=list(strides),
    )
    return _model([node], {"w": w})


def test_depthwise_kernels():
    assert _rules(_dw((3, 3))) == set()
    assert _rules(_dw((5, 5))) == set()
    assert _rules(_dw((3, 1))) == {("depthwise-kernel", UNSUPPORTED)}
    assert _rules(_dw((1, 3))) == {("depthwise-kernel", UNSUPPORTED)}
    assert _rules(_dw((5, 5), strides=(2, 2))) == {("depthwise-kernel", UNSUPPORTED)}
    assert _rules(_dw((3, 3), strides=(2, 2))) == set()
    assert _rules(_dw((3, 3), dilations=(2, 2))) == {("depthwise-dilation", UNVERIFIED)}


def test_grouped_pointwise_conv_is_legal():
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=4, kernel_shape=[1, 1])
    assert check_tidl(_model([node], {"w": np.zeros((8, 2, 1, 1), np.float32)})) == []


def _deconv(kernel, stride=2, group=1, pads=(0, 0, 0, 0)):
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w"],
        ["y"],
        kernel_shape=[kernel] * 2,
        strides=[stride] * 2,
        group=group,
        pads=list(pads),
    )
    return _model([node], {"w": np.zeros((8, 8 // group, kernel, kernel), np.float32)})


def test_conv_transpose_forms():
    assert _rules(_deconv(2)) == set()
    assert _rules(_deconv(4, pads=(1, 1, 1, 1))) == set()
    assert _rules(_deconv(3, pads=(1, 1, 1, 1))) == {("deconv-form", UNSUPPORTED)}
    assert _rules(_deconv(2, group=2)) == {("deconv-form", UNSUPPORTED)}
    assert _rules(_deconv(4, stride=4)) == {("deconv-form", UNSUPPORTED)}


def test_dropout_and_unknown_ops():
    assert _rules(_model([helper.make_node("Dropout", ["x"], ["y"])])) == {("dropout", UNSUPPORTED)}
    assert _rules(_model([helper.make_node("Erf", ["x"], ["y"])])) == {("unknown-op", UNSUPPORTED)}
    assert _rules(_model([helper.make_node("Relu", ["x"], ["y"])])) == set()


def test_dynamic_shapes():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], in_shape=("N", 8, 16, 16))
    assert ("dynamic-shape", UNSUPPORTED) in _rules(model)


def _resize(mode="linear", scales=(1, 1, 2, 2)):
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode=mode)
    return _model([node], {"s": np.asarray(scales, np.float32)})


def test_resize_modes_and_scales():
    assert _rules(_resize()) == set()
    assert _rules(_resize("nearest", (1, 1, 4, 4))) == set()
    assert _rules(_resize("cubic")) == {("resize-mode", UNSUPPORTED)}
    assert _rules(_resize(scales=(1, 1, 3, 3))) == {("resize-scale", UNSUPPORTED)}
    assert _rules(_resize(scales=(1, 1, 2, 4))) == {("resize-scale", UNSUPPORTED)}
    sizes = helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear")
    assert _rules(_model([sizes], {"sz": np.array([1, 8, 32, 32], np.int64)})) == set()


@pytest.mark.parametrize(
    "axis,keepdims,ok", [(1, 1, True), (-3, 1, True), (1, 0, False), (2, 1, False)]
)
def test_argmax_form(axis, keepdims, ok):
    node = helper.make_node("ArgMax", ["x"], ["y"], axis=axis, keepdims=keepdims)
    model = _model([node], out_type=TensorProto.INT64)
    assert _rules(model) == (set() if ok else {("argmax-form", UNSUPPORTED)})


def test_reshape_rank_and_shuffle_transpose():
    big = helper.make_node("Reshape", ["x", "s"], ["y"])
    model = _model([big], {"s": np.array([1, 2, 2, 2, 2, 2, 4, 16], np.int64)})
    assert _rules(model) == {("rank", UNSUPPORTED)}
    shuffle = [
        helper.make_node("Reshape", ["x", "s5"], ["a"]),
        helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "s4"], ["y"]),
    ]
    inits = {"s5": np.array([1, 2, 4, 16, 16], np.int64), "s4": np.array([1, 8, 16, 16], np.int64)}
    assert check_tidl(_model(shuffle, inits)) == []
    odd = _model(shuffle[:2], {"s5": inits["s5"]})  # a 5-D transpose that is not a shuffle
    assert _rules(odd) == {("transpose-rank", UNVERIFIED)}
    dyn = helper.make_node("Reshape", ["x", "shape"], ["y"])
    model = _model([helper.make_node("Shape", ["x"], ["shape"]), dyn])
    assert ("dynamic-shape", UNSUPPORTED) in _rules(model)


def test_gather_only_on_trailing_axis():
    chan = helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    assert _rules(_model([chan], {"i": np.arange(8)[::-1].copy()})) == {
        ("gather-form", UNSUPPORTED)
    }
    last = helper.make_node("Gather", ["x", "i"], ["y"], axis=3)
    assert _rules(_model([last], {"i": np.arange(16)})) == set()


def test_uint8_input_normalization_has_no_unsupported_node():
    nodes = [
        helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["f", "m"], ["s"]),
        helper.make_node("Mul", ["s", "k"], ["y"]),
    ]
    inits = {"m": np.zeros((1, 8, 1, 1), np.float32), "k": np.ones((1, 8, 1, 1), np.float32)}
    assert _rules(_model(nodes, inits)) == {("cast-edge", UNVERIFIED)}  # Sub/Mul: BatchNorm
    inner = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Cast", ["r"], ["c"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT),
    ]
    assert ("cast", UNSUPPORTED) in _rules(_model(inner))
    two = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sub", ["x", "r"], ["y"])]
    assert _rules(_model(two)) == {("eltwise-sub", UNVERIFIED)}


def test_exported_model_without_rewrites_lists_factorized_depthwise(tiny_onnx):
    findings = check_tidl(tiny_onnx)  # a plain torch export of dg4-light, not legalized
    counts = count_findings(findings)
    assert counts[UNSUPPORTED] > 0
    assert {f.rule for f in findings if f.severity == UNSUPPORTED} == {"depthwise-kernel"}
    assert all(f.node and f.op == "Conv" for f in findings)


def test_check_cli(tiny_onnx, tmp_path, capsys):
    assert main(["check", str(tiny_onnx), "--json"]) == 1  # unsupported nodes -> exit 1
    data = json.loads(capsys.readouterr().out)
    assert data["unsupported"] > 0 and data["findings"][0]["rule"] == "depthwise-kernel"
    legal = tmp_path / "legal.onnx"
    onnx.save(_dw((3, 3)), legal)
    assert main(["check", str(legal)]) == 0
    assert "0 unsupported, 0 unverified" in capsys.readouterr().out
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["check", str(bad)]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
    with pytest.raises(InputError, match="does not exist"):
        check_tidl(tmp_path / "none.onnx")


def test_checker_runs_without_torch(tmp_path):
    path = tmp_path / "dw.onnx"
    onnx.save(_dw((3, 1)), path)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from gradgroup.deploy.graph.tidl_check import check_tidl\n"
        f"print(len(check_tidl({str(path)!r})))\n"
        "from gradgroup.cli import main\n"
        f"sys.exit(main(['check', {str(path)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr  # one unsupported node, found without torch
    assert out.stdout.splitlines()[0] == "1" and "1 unsupported" in out.stdout
