"""``--target tidl``: every zoo architecture exports TIDL-legal and still matches PyTorch."""

import onnx
import pytest

from gradgroup.deploy.errors import RunError
from gradgroup.deploy.graph.core import attr
from gradgroup.deploy.graph.tidl_check import UNSUPPORTED, check_tidl
from gradgroup.export.onnx_export import ExportConfig, export_onnx
from gradgroup.train.models import ZOO, parse_arch

TIDL = ExportConfig(target="tidl", calib_data=None, verify_frames=1)


@pytest.mark.parametrize("arch", ZOO)
def test_zoo_exports_tidl_legal(arch, ckpt_factory, tmp_path):
    path, _ = ckpt_factory(arch, form="grouped" if arch == "erfnet" else "gradual")
    out = tmp_path / f"{arch}.onnx"
    result = export_onnx(path, out, TIDL)
    assert result.tidl[UNSUPPORTED] == 0
    assert [f for f in check_tidl(out) if f.severity == UNSUPPORTED] == []  # re-read from disk
    assert all(c.passed for c in result.checks)  # the rewritten graph still computes the same
    spec = parse_arch(arch)
    graph = onnx.load(out)
    deconvs = [n for n in graph.graph.node if n.op_type == "ConvTranspose"]
    assert all(list(attr(n, "kernel_shape")) in ([4, 4], [2, 2]) for n in deconvs)
    if not spec.light_decoder:  # ERFNet's two 3x3 upsamplers became 4x4 s2 p1
        assert result.rewrites["convtranspose_to_even"] == 2
    if spec.separable:  # every factorized depthwise conv became a square one
        assert result.rewrites["depthwise_to_square"] > 0
    assert "Gather" not in [n.op_type for n in graph.graph.node]
    assert result.summary().endswith("TIDL: 0 findings")


def test_tidl_target_with_uint8_and_argmax_is_legal(ckpt_factory, tmp_path):
    path, _ = ckpt_factory("dg4s-light")
    cfg = ExportConfig(
        target="tidl", input="uint8", output="argmax", calib_data=None, verify_frames=1
    )
    result = export_onnx(path, tmp_path / "m.onnx", cfg)
    assert result.tidl["unsupported"] == 0
    edge_casts = [f["node"] for f in result.tidl_findings if f["rule"] == "cast-edge"]
    assert len(edge_casts) == 2  # uint8 in, uint8 class map out: listed as unverified
    ops = [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node if n.op_type != "Constant"]
    assert ops[0] == "Cast" and ops[-2:] == ["ArgMax", "Cast"]


def test_tidl_target_fails_loudly_when_a_node_stays_illegal(ckpt_factory, tmp_path, monkeypatch):
    from gradgroup.export import onnx_export

    path, _ = ckpt_factory("dg2")
    monkeypatch.setattr(onnx_export, "TIDL_REWRITES", ())  # no legalization: depthwise 3x1 stays
    with pytest.raises(RunError, match="not TIDL-legal.*depthwise 3x1"):
        export_onnx(path, tmp_path / "m.onnx", TIDL)
    assert list(tmp_path.glob("m.*")) == []
