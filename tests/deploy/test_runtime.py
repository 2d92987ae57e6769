"""The board runtime: float/uint8 inputs, logits/argmax outputs, fp32/int8, and its errors."""

import logging
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import int8_model

from gradgroup.deploy import preprocess, runtime
from gradgroup.deploy.errors import InputError, MissingDependencyError
from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta
from gradgroup.deploy.runtime import Segmenter
from gradgroup.deploy.view import overlay

H, W = 32, 64


def frame(seed=0, size=(48, 80)):
    """A BGR camera frame of a size other than the model's (never constant)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def uint8_argmax_model(src, dst):
    """Wrap the tiny model: uint8 NCHW input normalized in-graph, ArgMax output (TI's style)."""
    model = onnx.load(str(src))
    meta = read_meta(model)
    g = model.graph
    old_in, old_out = g.input[0].name, g.output[0].name
    mean = np.asarray(meta.preprocess.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(meta.preprocess.std, np.float32).reshape(1, 3, 1, 1)
    g.initializer.extend(
        [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(std, "std")]
    )
    head = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["image_f", "mean"], ["image_c"]),
        helper.make_node("Div", ["image_c", "std"], [old_in]),
    ]
    tail = [helper.make_node("ArgMax", [old_out], ["ids"], axis=1, keepdims=1)]
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, H, W]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 1, H, W]))
    write_meta(model, ModelMeta(arch=meta.arch, preprocess=meta.preprocess, input_dtype="uint8",
                                output="argmax"))  # fmt: skip
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def variants(tiny_onnx, tmp_path_factory):
    d = tmp_path_factory.mktemp("variants")
    return {
        "fp32": tiny_onnx,
        "uint8_argmax": uint8_argmax_model(tiny_onnx, d / "u8.onnx"),
        "int8": int8_model(tiny_onnx, d / "int8.onnx"),
    }


@pytest.mark.parametrize("kind", ["fp32", "uint8_argmax", "int8"])
def test_segments_any_frame_size(variants, kind):
    seg = Segmenter(variants[kind], threads=1)
    out = seg(frame())
    assert out.class_map.shape == (48, 80) and out.class_map.dtype == np.uint8
    assert out.class_map.max() < 19
    assert len(np.unique(out.class_map)) > 1  # random BN stats: not a constant map
    assert set(out.timings) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in out.timings.values())
    over = overlay(frame(), out.class_map, seg.meta.classes, 0.5)
    assert over.shape == (48, 80, 3) and over.dtype == np.uint8


def test_each_frame_is_checked_once(tiny_onnx, monkeypatch):
    calls = []

    def counting(frame):
        calls.append(frame.shape)
        check(frame)

    check = preprocess.check_frame
    monkeypatch.setattr(preprocess, "check_frame", counting)
    monkeypatch.setattr(runtime, "check_frame", counting)
    seg = Segmenter(tiny_onnx, threads=1)
    seg(frame())
    assert calls == [(48, 80, 3)]
    seg.predict_rgb(frame(0, (H, W)))
    assert len(calls) == 2


def bgr_model(src, dst):
    """The same graph with metadata saying it takes BGR (so only the preprocessing differs)."""
    model = onnx.load(str(src))
    meta = read_meta(model)
    write_meta(model, replace(meta, preprocess=replace(meta.preprocess, color_order="BGR")))
    onnx.save(model, str(dst))
    return dst


class RecordingSession:
    """Wraps an ORT session and keeps every input tensor it is fed."""

    def __init__(self, session):
        self.session, self.fed = session, []

    def run(self, names, feed):
        self.fed.extend(feed.values())
        return self.session.run(names, feed)


@pytest.mark.parametrize("kind", ["fp32", "uint8_argmax"])
@pytest.mark.parametrize("frame_order", ["BGR", "RGB"])
def test_bgr_model_input_is_exact_without_a_colour_round_trip(
    variants, kind, frame_order, tmp_path, monkeypatch
):
    seg = Segmenter(bgr_model(variants[kind], tmp_path / "bgr.onnx"), threads=1)
    spec = seg.meta.preprocess
    assert spec.color_order == "BGR"
    image = frame(2)
    # The input as the runtime built it before: to RGB first, then reversed for the model.
    want = seg.prepare(preprocess.resize_frame(image, spec, frame_order))
    seg.session = RecordingSession(seg.session)
    swaps = []
    cvt = preprocess.cv2.cvtColor
    monkeypatch.setattr(
        preprocess.cv2, "cvtColor", lambda *a, **k: swaps.append(a[1]) or cvt(*a, **k)
    )
    seg(image, frame_order)
    (fed,) = seg.session.fed
    assert fed.dtype == want.dtype
    np.testing.assert_array_equal(fed, want)
    assert swaps == []  # no cv2 swap; the exact input shows no second reversal either


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((32, 64, 4), np.uint8), "shape"),
        (np.zeros((32, 64), np.uint8), "shape"),
        (np.zeros((32, 64, 3), np.float32), "dtype"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy"),
    ],
)
def test_bad_frames_are_input_errors(tiny_onnx, bad, match):
    with pytest.raises(InputError, match=match):
        Segmenter(tiny_onnx, threads=1)(bad)


def test_predict_rgb_needs_model_size(tiny_onnx):
    with pytest.raises(InputError, match="model size 32x64"):
        Segmenter(tiny_onnx, threads=1).predict_rgb(frame(0, (40, 64)))


def test_truncated_and_missing_files(tiny_onnx, tmp_path):
    data = tiny_onnx.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut.onnx"):
        Segmenter(cut)
    with pytest.raises(InputError, match="does not exist"):
        Segmenter(tmp_path / "nope.onnx")


def test_model_without_metadata_warns_and_uses_defaults(tiny_onnx, tmp_path, caplog):
    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    with caplog.at_level(logging.WARNING):
        seg = Segmenter(path, threads=1)
    assert "no gradgroup metadata" in caplog.text
    assert seg.meta.preprocess.size == (H, W)  # from the graph input
    assert seg.meta.classes.num_classes == 19
    assert seg(frame()).class_map.shape == (48, 80)


def test_metadata_contradicting_graph_is_refused(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    meta = read_meta(model)
    write_meta(model, ModelMeta(arch=meta.arch, preprocess=type(meta.preprocess)(64, 128)))
    path = tmp_path / "lies.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError, match="metadata says input 64x128"):
        Segmenter(path)


def test_session_options(tiny_onnx, tmp_path):
    opt = tmp_path / "opt.onnx"
    seg = Segmenter(tiny_onnx, threads=1, graph_optimization="basic", optimized_model_path=opt)
    assert opt.is_file() and onnx.load(str(opt)).graph.node
    assert seg.providers == ["CPUExecutionProvider"]
    assert seg.ti_benchmark() is None
    with pytest.raises(InputError, match="graph optimization 'max'"):
        Segmenter(tiny_onnx, graph_optimization="max")
    with pytest.raises(InputError, match="provider 'gpu'"):
        Segmenter(tiny_onnx, provider="gpu")


@pytest.mark.skipif(
    "TIDLExecutionProvider" in ort.get_available_providers(), reason="TI's onnxruntime present"
)
def test_spinning_and_offline_optimized_model(tiny_onnx, tmp_path):
    opt = tmp_path / "opt.onnx"
    first = Segmenter(tiny_onnx, threads=2, spinning=False, optimized_model_path=opt)
    options = first.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # The saved, already-optimized graph loads without optimizing and segments the same.
    again = Segmenter(opt, graph_optimization="disabled", session_config={"session.x": "1"})
    rgb = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    assert np.array_equal(first.predict_rgb(rgb), again.predict_rgb(rgb))


def test_tidl_absent_is_a_clear_missing_dependency(tiny_onnx, tmp_path):
    with pytest.raises(
        MissingDependencyError, match="TIDLExecutionProvider.*edgeai-tidl-tools"
    ) as e:
        Segmenter(tiny_onnx, provider="tidl", artifacts=tmp_path)
    assert "\n" not in str(e.value)


def test_fast_argmax_matches_numpy_with_ties():
    from gradgroup.deploy.runtime import _argmax_channels

    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (19, 16, 24)).astype(np.float32)  # many ties
    assert np.array_equal(_argmax_channels(logits), logits.argmax(0).astype(np.uint8))


def test_tidl_options_use_ti_names(tmp_path, monkeypatch):
    from gradgroup.deploy.session import tidl_provider_options

    # Only the provider list is faked: this checks the options handed to TI's provider.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TIDLExecutionProvider", "CPU"])
    options = tidl_provider_options(tmp_path, {"debug_level": 2, "core_number": 1})
    assert options == {"artifacts_folder": str(tmp_path), "debug_level": "2", "core_number": "1"}
    with pytest.raises(InputError, match="artifacts folder"):
        tidl_provider_options(None, None)
    with pytest.raises(InputError, match="does not exist"):
        tidl_provider_options(tmp_path / "missing", None)
