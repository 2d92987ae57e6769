"""ONNX graph counts: tied to the PyTorch counter, int8 graphs, exact hand-made graphs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import export_tiny_onnx, int8_model

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.graph.stats import graph_stats

SIZE = (32, 64)


def folded_bn_channels(model):
    """Channels of the BNs that directly follow an nn.Conv2d: torch's exporter folds those."""
    import torch.fx
    from torch import nn

    modules = dict(model.named_modules())
    total = 0
    for node in torch.fx.symbolic_trace(model).graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.BatchNorm2d):
            src = node.args[0]
            if src.op == "call_module" and type(modules[src.target]) is nn.Conv2d:
                total += modules[node.target].num_features
    return total


@pytest.mark.parametrize("arch", ["erfnet", "d", "dg4", "dg4s", "dg2-sel5-light"])
def test_onnx_counts_equal_pytorch_counts(arch, tmp_path):
    pytest.importorskip("torch")
    from gradgroup.train.flops import count_model
    from gradgroup.train.models import create_model

    model = create_model(arch).eval()
    ref = count_model(model, SIZE)
    stats = graph_stats(export_tiny_onnx(tmp_path / f"{arch}.onnx", arch, SIZE))
    assert stats.macs == ref.macs
    assert stats.macs_by_type == ref.macs_by_type
    # The deployed graph lacks the scale and shift of every BN folded into its conv.
    assert stats.params == ref.params - 2 * folded_bn_channels(model)
    assert stats.precision == "fp32" and stats.macs_by_precision == {"fp32": ref.macs}
    assert stats.file_bytes == (tmp_path / f"{arch}.onnx").stat().st_size


@pytest.fixture(scope="module")
def int8_tiny(tiny_onnx, tmp_path_factory):

    return int8_model(tiny_onnx, tmp_path_factory.mktemp("q") / "q.onnx")


def test_int8_graph_counts_weights_once(tiny_onnx, int8_tiny):
    fp32 = graph_stats(tiny_onnx)
    int8 = graph_stats(int8_tiny)
    assert int8.precision == "int8"
    assert int8.params == fp32.params
    assert int8.macs == fp32.macs and int8.macs_by_type == fp32.macs_by_type
    assert int8.macs_by_precision == {"int8": fp32.macs}
    # int8 weights (biases stay int32): well under half the fp32 bytes.
    assert int8.weight_bytes < 0.5 * fp32.weight_bytes


def _model(nodes, inputs, outputs, inits):
    tensors = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_hand_made_graph_exact_counts():
    rng = np.random.default_rng(0)
    inits = {
        "w_dw": rng.standard_normal((8, 1, 3, 3)).astype(np.float32),  # depthwise 8 ch
        "w_g": rng.standard_normal((8, 4, 1, 1)).astype(np.float32),  # 2 groups
        "b_g": np.zeros(8, np.float32),
        "w_t": rng.standard_normal((8, 4, 2, 2)).astype(np.float32),  # transposed 8 -> 4
        "w_m": rng.standard_normal((16, 5)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w_dw"], ["a"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "w_g", "b_g"], ["b"], group=2),
        helper.make_node("ConvTranspose", ["b", "w_t"], ["c"], strides=[2, 2]),
        helper.make_node("MatMul", ["c", "w_m"], ["y"]),  # (1,4,8,16) @ (16,5)
    ]
    stats = graph_stats(_model(nodes, [_f("x", [1, 8, 4, 8])], [_f("y", [1, 4, 8, 5])], inits))
    assert stats.macs_by_type == {
        "depthwise": 8 * 4 * 8 * 9,
        "grouped": 8 * 4 * 8 * 4,
        "transposed": 8 * 4 * 8 * 4 * 4,  # input elements x Cout/g x kh x kw
        "matmul": 4 * 8 * 5 * 16,
    }
    assert stats.params == 72 + 32 + 8 + 128 + 80
    assert stats.weight_bytes == 4 * (72 + 32 + 8 + 128 + 80)


def test_peak_activation_liveness():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["x"], ["b"]),  # x still live: x, a, b = 3 tensors
        helper.make_node("Add", ["a", "b"], ["c"]),  # x freed: a, b, c = 3 tensors
        helper.make_node("Relu", ["c"], ["y"]),  # a, b freed: c, y
    ]
    stats = graph_stats(_model(nodes, [_f("x", [1, 1, 4, 4])], [_f("y", [1, 1, 4, 4])], {}))
    assert stats.peak_activation_bytes == 3 * 64
    assert stats.peak_intermediate_bytes == 3 * 64  # a, b, c
    assert stats.macs == 0 and stats.params == 0
    chain = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    stats = graph_stats(_model(chain, [_f("x", [1, 1, 8, 8])], [_f("y", [1, 1, 8, 8])], {}))
    assert stats.peak_activation_bytes == 2 * 256  # x + a, then a + y
    assert stats.peak_intermediate_bytes == 256  # a alone: x and y are DRAM buffers


def test_qdq_float_tensors_are_fused_away(tiny_onnx, int8_tiny):
    fp32 = graph_stats(tiny_onnx)
    int8 = graph_stats(int8_tiny)
    # Intermediates are uint8 between fused Q/DQ pairs: about a quarter of the float bytes.
    assert int8.peak_intermediate_bytes < 0.5 * fp32.peak_intermediate_bytes
    acts = {t.name: t.nbytes for t in int8.tensors if t.kind == "activation"}
    assert acts and max(acts.values()) <= fp32.peak_intermediate_bytes


def test_symbolic_input_needs_a_size(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    for i, name in ((2, "h"), (3, "w")):
        model.graph.input[0].type.tensor_type.shape.dim[i].dim_param = name
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError, match="symbolic"):
        graph_stats(path)
    assert graph_stats(path, input_size=SIZE).macs == graph_stats(tiny_onnx).macs


def test_corrupt_file_is_input_error(tiny_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(tiny_onnx.read_bytes()[:1000])
    with pytest.raises(InputError, match="bad.onnx"):
        graph_stats(bad)
