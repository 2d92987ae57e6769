"""export_onnx: true grouped convs, folded BN, options, metadata, verification, atomic output."""

import copy
import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from gradgroup.deploy.calibset import load_calibset
from gradgroup.deploy.errors import InputError, RunError
from gradgroup.deploy.graph.core import attr
from gradgroup.deploy.metadata import read_meta
from gradgroup.deploy.preprocess import normalize, to_layout
from gradgroup.deploy.scenes import render_scene
from gradgroup.export import verify
from gradgroup.export.onnx_export import ExportConfig, export_onnx
from gradgroup.train.flops import count_model
from gradgroup.train.grouping import convert_to_grouped, gradual_layers

FAST = dict(calib_data=None, verify_frames=2)


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _convs(model):
    inits = _inits(model)
    return [(n, inits[n.input[1]]) for n in model.graph.node if n.op_type == "Conv"]


def _has_zero_offdiagonal_blocks(weight):
    """True when a dense conv weight is block-diagonal for some group count > 1."""
    out_c, in_c = weight.shape[:2]
    for groups in (2, 4, 8, 16, 32, 64, 128):
        if out_c % groups or in_c % groups or groups > min(out_c, in_c):
            continue
        o, i = out_c // groups, in_c // groups
        mask = np.ones((out_c, in_c), bool)
        for g in range(groups):
            mask[g * o : (g + 1) * o, g * i : (g + 1) * i] = False
        if np.all(weight[mask] == 0):
            return True
    return False


@pytest.fixture(scope="module")
def dg4s_export(dg4s_ckpt, tmp_path_factory):
    """The default export of the dg4s checkpoint (with a 3-frame calibration set)."""
    out = tmp_path_factory.mktemp("export") / "sub" / "dg4s.onnx"
    return out, export_onnx(dg4s_ckpt[0], out, ExportConfig(calib_frames=3, verify_frames=2))


def test_gradual_layers_become_grouped_convs(dg4s_ckpt, dg4s_export):
    _, model = dg4s_ckpt
    expected = sorted(
        (m.out_channels, m.in_channels // m.groups, *m.kernel_size, m.groups)
        for _, m in gradual_layers(model)
    )
    out, result = dg4s_export
    graph = onnx.load(out)
    grouped = sorted(
        (*w.shape, attr(n, "group")) for n, w in _convs(graph) if attr(n, "group", 1) > 1
    )
    assert grouped == expected  # one Conv(group=G) with [Cout, Cin/G, kh, kw] per gradual layer
    assert result.grouped_convs == len(expected) == 78
    for node, weight in _convs(graph):
        if attr(node, "group", 1) == 1:
            assert not _has_zero_offdiagonal_blocks(weight), node.name


def test_bn_folded_no_dropout_static_shapes(ckpt_factory, tmp_path):
    path, _ = ckpt_factory("erfnet", form="grouped")
    export_onnx(path, tmp_path / "erfnet.onnx", ExportConfig(**FAST))
    graph = onnx.load(tmp_path / "erfnet.onnx")
    producer = {o: n for n in graph.graph.node for o in n.output}
    ops = [n.op_type for n in graph.graph.node]
    assert "Dropout" not in ops and ops.count("ConvTranspose") == 3
    for node in graph.graph.node:
        if node.op_type == "BatchNormalization":  # only the Downsamplers' BN over a Concat is left
            assert producer[node.input[0]].op_type == "Concat"
    for io in (*graph.graph.input, *graph.graph.output):
        assert all(d.dim_value > 0 for d in io.type.tensor_type.shape.dim)


def test_alpha_above_zero_is_refused_unless_dense(ckpt_factory, tmp_path):
    path, _ = ckpt_factory("dg2", alpha=0.25)
    out = tmp_path / "m.onnx"
    with pytest.raises(RunError, match=r"alpha=0\.25.*--dense") as err:
        export_onnx(path, out, ExportConfig(**FAST))
    assert "encoder." in str(err.value)  # names the layer
    assert not list(tmp_path.glob("m.*"))
    result = export_onnx(path, out, ExportConfig(dense=True, **FAST))
    assert result.grouped_convs == 0 and result.alpha == pytest.approx(0.25)
    assert read_meta(onnx.load(out)).alpha == pytest.approx(0.25)


@pytest.mark.parametrize("opset", [11, 17, 18])
def test_opsets(ckpt_factory, tmp_path, opset):
    path, _ = ckpt_factory("dg2s-light")
    result = export_onnx(path, tmp_path / "m.onnx", ExportConfig(opset=opset, **FAST))
    graph = onnx.load(tmp_path / "m.onnx")
    assert {o.domain: o.version for o in graph.opset_import}[""] == opset
    assert "Resize" in [n.op_type for n in graph.graph.node]
    # the pattern is found at every opset; random weights hold no denormals
    assert result.rewrites == {"flush_tiny_weights": 0, "shuffle_to_gather": 26}
    assert all(c.passed for c in result.checks)


def test_uint8_input_and_argmax_output(ckpt_factory, tmp_path):
    path, model = ckpt_factory("dg2-light")
    cfg = ExportConfig(input="uint8", output="argmax", **FAST)
    result = export_onnx(path, tmp_path / "m.onnx", cfg)
    graph = onnx.load(tmp_path / "m.onnx")
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    argmax = next(n for n in graph.graph.node if n.op_type == "ArgMax")
    assert attr(argmax, "axis") in (1, -3) and attr(argmax, "keepdims") == 1
    assert [c.stage for c in result.checks][-1].endswith("argmax")
    # The graph's own normalization is deploy's: raw pixels in, PyTorch's classes out.
    meta = read_meta(graph)
    rgb = render_scene(7, meta.preprocess.size)[0]
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    classes = sess.run(None, {"input": to_layout(rgb, meta.preprocess)})[0]
    convert_to_grouped(model)
    with torch.no_grad():
        expected = model(torch.from_numpy(normalize(rgb, meta.preprocess))).argmax(1, keepdim=True)
    assert classes.shape == (1, 1, 32, 64) and classes.dtype == np.uint8
    assert (classes == expected.numpy()).mean() >= 0.999


def test_int64_argmax_and_bgr_nhwc_uint8(ckpt_factory, tmp_path):
    path, _ = ckpt_factory("dg2", color_order="BGR", layout="NHWC")
    cfg = ExportConfig(input="uint8", output="argmax", argmax_dtype="int64", **FAST)
    result = export_onnx(path, tmp_path / "m.onnx", cfg)
    graph = onnx.load(tmp_path / "m.onnx")
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 32, 64, 3]
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert all(c.passed for c in result.checks)


def test_shuffle_forms(dg4s_ckpt, dg4s_export, tmp_path):
    path, _ = dg4s_ckpt
    g_path, gather = dg4s_export  # the default form
    reshape = export_onnx(path, tmp_path / "r.onnx", ExportConfig(shuffle="reshape", **FAST))
    g_ops = [n.op_type for n in onnx.load(g_path).graph.node]
    r_ops = [n.op_type for n in onnx.load(tmp_path / "r.onnx").graph.node]
    assert g_ops.count("Gather") == 26 and "Transpose" not in g_ops  # 13 blocks x 2 shuffles
    assert "Gather" not in r_ops and r_ops.count("Transpose") == 26
    assert gather.rewrites == {"flush_tiny_weights": 0, "shuffle_to_gather": 26}
    assert reshape.rewrites == {"flush_tiny_weights": 0, "gather_to_shuffle": 0}
    assert (
        ExportConfig().shuffle_form == "gather"
        and ExportConfig(target="tidl").shuffle_form == "reshape"
    )


def test_metadata_report_and_calibset(dg4s_ckpt, dg4s_export):
    path, model = dg4s_ckpt
    out, result = dg4s_export
    model = copy.deepcopy(model)
    meta = read_meta(onnx.load(out))
    convert_to_grouped(model)
    count = count_model(model, (32, 64))
    assert (meta.arch, meta.preprocess.size, meta.input_dtype, meta.output) == (
        "dg4s",
        (32, 64),
        "float32",
        "logits",
    )
    assert (meta.params, meta.macs, meta.precision, meta.alpha) == (
        count.params,
        count.macs,
        "fp32",
        0.0,
    )
    assert len(meta.classes.names) == 19
    assert meta.extra["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (
        meta.extra["opset"] == 17
        and meta.extra["shuffle"] == "gather"
        and meta.extra["target"] == "cpu"
    )
    assert "gradgroup_version" in meta.extra
    report = json.loads(out.with_suffix(".export.json").read_text())
    assert [c["stage"] for c in report["checks"]] == ["raw", "simplified+rewritten"]
    assert all(c["passed"] and c["max_abs_diff"] <= 1e-3 for c in report["checks"])
    calib = load_calibset(out.with_suffix(".calib.npz"))
    assert (
        len(calib) == 3
        and calib.images.shape == (3, 32, 64, 3)
        and calib.preprocess == meta.preprocess
    )
    assert result.calib_frames == 3
    # A checkpoint that records no training data (older ones) calibrates on scenes, no error.
    assert meta.data is None and result.config["calib_data"] == "synthetic"
    assert calib.names[0] == "frame_000000"
    assert result.summary().startswith("export success") and "78 grouped convs" in result.summary()


def _folder_dataset(root, splits=("train", "val")):
    """A folder:DIR dataset with two 32x64 images per split, named after their split."""
    import cv2

    for split in splits:
        for i in range(2):
            for sub, array in (("images", np.full((32, 64, 3), 60 * i, np.uint8)),
                               ("masks", np.zeros((32, 64), np.uint8))):  # fmt: skip
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / split / sub / f"{split}{i}.png"), array)
    return root


def test_calibration_follows_the_checkpoints_training_data(ckpt_factory, tmp_path):
    data = _folder_dataset(tmp_path / "data")
    ckpt, _ = ckpt_factory("dg4-light", data=f"folder:{data}")
    fast = dict(simplify=False, verify_frames=1, calib_frames=2)
    result = export_onnx(ckpt, tmp_path / "m.onnx", ExportConfig(**fast))
    spec = f"folder:{data.resolve()}"
    assert read_meta(onnx.load(tmp_path / "m.onnx")).data == spec
    assert result.config["calib_data"] == spec
    assert load_calibset(tmp_path / "m.calib.npz").names == ("train0", "train1")  # train split
    explicit = export_onnx(ckpt, tmp_path / "s.onnx", ExportConfig(calib_data="synthetic", **fast))
    assert load_calibset(explicit.calib_path).names[0] == "frame_000000"  # an explicit spec wins
    moved = tmp_path / "moved"
    data.rename(moved)
    with pytest.raises(InputError, match=r"trained on folder:.*--calib-data"):
        export_onnx(ckpt, tmp_path / "x.onnx", ExportConfig(**fast))
    assert not (tmp_path / "x.onnx").exists()


def test_verification_failure_leaves_no_files(dg4s_ckpt, tmp_path, monkeypatch):
    path, _ = dg4s_ckpt
    # A reference that disagrees with the graph: the export must fail loudly and write nothing.
    monkeypatch.setattr(verify, "torch_logits", lambda *a: np.zeros((2, 19, 32, 64), np.float32))
    with pytest.raises(RunError, match="verification failed on the raw graph"):
        export_onnx(path, tmp_path / "m.onnx", ExportConfig(calib_frames=2, verify_frames=2))
    assert list(tmp_path.iterdir()) == []


def test_no_simplify_keeps_grouped_convs(dg4s_ckpt, tmp_path):
    path, _ = dg4s_ckpt
    result = export_onnx(path, tmp_path / "m.onnx", ExportConfig(simplify=False, **FAST))
    assert result.grouped_convs == 78 and result.checks[-1].stage == "rewritten"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(opset=10), "opset"),
        (dict(input="float16"), "input"),
        (dict(target="trt"), "target"),
        (dict(target="tidl", shuffle="gather"), "not legal on TIDL"),
        (dict(calib_data="foo"), "not understood"),
        (dict(calib_data="images:/no/such/dir"), "does not exist"),
        (dict(calib_frames=0), "calib-frames"),
        (dict(rewrites=("no_such",)), "rewrite 'no_such'"),
    ],
)
def test_bad_config_is_an_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        ExportConfig(**kwargs)


def test_bad_paths(dg4s_ckpt, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        export_onnx(tmp_path / "none.pt", tmp_path / "m.onnx", ExportConfig(**FAST))
    with pytest.raises(InputError, match=r"\.onnx"):
        export_onnx(dg4s_ckpt[0], tmp_path / "m.bin", ExportConfig(**FAST))
    with pytest.raises(InputError, match="multiple of 8"):
        export_onnx(dg4s_ckpt[0], tmp_path / "m.onnx", ExportConfig(size=(30, 64), **FAST))


def test_verification_bound_is_relative_to_the_logit_scale():
    from gradgroup.export.verify import Check, compare

    # A trained model's logits of ~40 differing by 0.004 (fp32 summation order) pass ...
    assert Check("raw", 4, 0.004, 0.99996, logit_scale=40.0).passed
    # ... the same difference on logits of scale 1 does not, nor does a graph that is wrong.
    assert not Check("raw", 4, 0.004, 0.99996, logit_scale=0.7).passed
    assert not Check("raw", 4, 3.0, 0.99996, logit_scale=40.0).passed
    ref = np.random.default_rng(0).normal(0, 20, (1, 3, 4, 4)).astype(np.float32)
    check = compare("raw", ref, ref + 0.01)
    assert check.logit_scale == pytest.approx(np.abs(ref).max()) and check.passed
