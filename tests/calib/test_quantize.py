"""ORT static quantization end to end on a tiny model: QDQ, metadata, JSON, accuracy control."""

import json
import math

import cv2
import numpy as np
import onnx
import pytest

from gradgroup.calib.graph import scales
from gradgroup.calib.quantize import CalibConfig, quantize
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metadata import read_meta
from gradgroup.deploy.runtime import Segmenter

EVAL_FRAMES = 4  # as in conftest.py


def test_output_is_qdq_runs_in_ort_and_carries_int8_metadata(quantized):
    result, path = quantized
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "BatchNormalization" not in ops  # folded or turned into a quantizable 1x1 conv
    meta = read_meta(model)
    assert meta.precision == "int8" and meta.arch == "dg4-light"
    quant = meta.extra["quantization"]
    assert quant["format"] == "QDQ" and quant["method"] == "percentile"
    assert quant["percentile"] == 99.99 and quant["calib_frames"] == 8
    assert quant["calib_set"].endswith("tiny.calib.npz")
    runtime = result.runtime  # what ORT runs: the int8 chain must not be broken into islands
    assert runtime["int8_ops"] >= 120 and runtime["ops"]["QLinearConv"] >= 100
    assert runtime["float_islands"] <= 8 and runtime["ops"].get("BatchNormalization", 0) == 0
    ids = Segmenter(path).predict_rgb(np.zeros((32, 64, 3), np.uint8))
    assert ids.shape == (32, 64) and ids.max() < 19


def test_json_report_and_result_line(quantized):
    result, path = quantized
    report = json.loads(path.with_suffix(".json").read_text())
    acc = report["accuracy"]
    assert set(acc) >= {"fp32_miou", "int8_miou", "drop", "agreement", "eval_data", "eval_frames"}
    assert acc["eval_frames"] == EVAL_FRAMES
    assert 0.5 < acc["agreement"] <= 1.0  # fractions in files, percent only when printed
    assert 0.0 <= acc["int8_miou"] <= 1.0 and 0.0 <= acc["fp32_miou"] <= 1.0
    assert acc["drop"] == pytest.approx(acc["fp32_miou"] - acc["int8_miou"], abs=1e-5)
    assert result.accuracy.to_dict() == acc
    sqnr = report["sqnr"]
    assert len(sqnr) > 50
    # worst first; null is a tensor its QDQ pair reproduces exactly (infinite SQNR)
    db = [math.inf if r["qdq_sqnr"] is None else r["qdq_sqnr"] for r in sqnr]
    assert db == sorted(db) and math.isfinite(db[0])
    assert report["size_bytes"] == path.stat().st_size
    line = result.summary()
    assert line.startswith("calib success") and "agreement" in line and str(path) in line
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".calib-")]
    assert not leftovers


def test_power_of_two_preset_gives_symmetric_per_tensor_pow2_scales(model_dir):
    out = model_dir / "p2" / "tiny.p2.onnx"
    result = quantize(model_dir / "tiny.onnx", out, CalibConfig(power_of_2=True, evaluate=False))
    assert result.settings.per_channel is False and result.settings.symmetric_activations
    model = onnx.load(str(out))
    found = scales(model)
    assert found
    for name, value in found.items():
        assert value.size == 1, f"{name} is per-channel"
        exponent = np.log2(float(value.item()))
        assert exponent == round(exponent), f"{name} scale {value} is not a power of two"
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    act_zero_points = [
        int(inits[n.input[2]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2
    ]
    # TIDL's scheme: unsigned (zp 0) for ReLU outputs, symmetric (zp 128 = signed) for the rest.
    assert set(act_zero_points) == {0, 128}
    assert act_zero_points.count(0) > act_zero_points.count(128)
    # ReLUs still fold into the integer kernels (no float islands from the preset).
    assert result.runtime["float_islands"] <= 8


def _activation_scales(path):
    """Per-tensor activation scales of a QDQ model (the QuantizeLinear nodes')."""
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1
    }


@pytest.fixture(scope="module")
def minmax_model(model_dir):
    out = model_dir / "minmax" / "tiny.int8.onnx"
    quantize(model_dir / "tiny.onnx", out, CalibConfig(method="minmax", evaluate=False))
    return out


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_methods_clip_ranges_that_minmax_keeps(model_dir, minmax_model, method):
    # ORT's quantize_static alone gave minmax ranges for both (too few bins / symmetric
    # percentile clamped back to the min and max); calibrate_ranges must really clip.
    out = model_dir / method / "tiny.int8.onnx"
    cfg = CalibConfig(method=method, percentile=99.9, evaluate=False)
    quantize(model_dir / "tiny.onnx", out, cfg)
    minmax, clipped = _activation_scales(minmax_model), _activation_scales(out)
    shared = sorted(set(minmax) & set(clipped))
    assert len(shared) > 50
    assert all(clipped[t] <= minmax[t] * (1 + 1e-6) for t in shared)
    narrower = sum(clipped[t] < 0.99 * minmax[t] for t in shared)
    assert narrower > len(shared) // 4, f"{method}: only {narrower}/{len(shared)} ranges clipped"
    assert read_meta(onnx.load(str(out))).extra["quantization"]["method"] == method


def test_calibration_frames_are_fed_in_bounded_chunks_from_the_start():
    from gradgroup.calib.quantize import _chunks

    class Reader:
        def __init__(self):
            self.i, self.rewound = 3, 0  # mid-way: _chunks must rewind

        def get_next(self):
            self.i += 1
            return {"x": self.i} if self.i <= 5 else None

        def rewind(self):
            self.i, self.rewound = 0, self.rewound + 1

    reader = Reader()
    chunks = [[f["x"] for f in iter(c.get_next, None)] for c in _chunks(reader, 2)]
    assert chunks == [[1, 2], [3, 4], [5]] and reader.rewound == 1


def _pseudo_labelled_folder(root, model_path, frames=EVAL_FRAMES):
    """A folder dataset labelled with the fp32 model's own argmax: fp32 mIoU is 100 by design."""
    from gradgroup.deploy.scenes import render_scene

    seg = Segmenter(model_path)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(frames):
        rgb, _ = render_scene(100 + i, (32, 64))
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), seg.predict_rgb(rgb))
    return root


def test_max_drop_keeps_layers_in_float_and_reports_them(model_dir, tmp_path):
    data = _pseudo_labelled_folder(tmp_path / "labels", model_dir / "tiny.onnx")
    out = tmp_path / "tiny.int8.onnx"
    cfg = CalibConfig(
        power_of_2=True,
        method="minmax",
        eval_data=f"folder:{data}",
        eval_frames=EVAL_FRAMES,
        max_drop=0.0,
        max_float_layers=3,
        sqnr_frames=2,
    )
    result = quantize(model_dir / "tiny.onnx", out, cfg)
    acc = result.accuracy
    assert acc.report.fp32_miou == pytest.approx(1.0)
    assert len(result.search) == 3  # an impossible target uses every try
    assert acc.max_drop_met is False and acc.report.drop > 0.0
    kept = [n for step in result.search if step["kept"] for n in step["nodes"]]
    assert result.float_nodes == kept
    first = result.search[0]
    assert first["tensor"] == result.sqnr[0]["tensor"]  # worst SQNR tried first
    # Every kept step lowered the drop; the final model is the best one found.
    drops = [s["drop"] for s in result.search if s["kept"]]
    assert drops == sorted(drops, reverse=True)
    if drops:
        assert acc.report.drop == pytest.approx(drops[-1], abs=1e-3)
    meta = read_meta(onnx.load(str(out)))
    assert meta.extra["quantization"]["float_nodes"] == result.float_nodes
    node_names = {n.name for n in onnx.load(str(out)).graph.node}
    assert set(result.float_nodes) <= node_names


def test_calibset_of_wrong_size_is_refused_without_output(model_dir, tmp_path, calibset_factory):
    bad = calibset_factory(tmp_path / "big.npz", (64, 128), frames=2)
    out = tmp_path / "o.onnx"
    with pytest.raises(InputError, match="64x128 frames but the model takes 32x64"):
        quantize(model_dir / "tiny.onnx", out, CalibConfig(set_path=str(bad), evaluate=False))
    assert list(tmp_path.iterdir()) == [bad]


def test_already_quantized_model_is_refused(quantized, tmp_path):
    with pytest.raises(InputError, match="already quantized"):
        quantize(quantized[1], tmp_path / "again.onnx", CalibConfig(evaluate=False))
    assert not list(tmp_path.iterdir())


def test_truncated_model_is_refused(model_dir, tmp_path):
    data = (model_dir / "tiny.onnx").read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="broken.onnx"):
        quantize(broken, tmp_path / "o.onnx", CalibConfig(evaluate=False))
    assert [p.name for p in tmp_path.iterdir()] == ["broken.onnx"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "kl"}, "calibration method 'kl'"),
        ({"activation_type": "u16"}, "activation_type 'u16'"),
        ({"max_drop": -1.0}, r"must be a fraction of mIoU in \[0, 1\]"),
        ({"max_drop": 2.0}, r"\(--max-drop 200 points\)"),  # points given as a fraction
        ({"max_drop": 1.0, "evaluate": False}, "needs the accuracy evaluation"),
    ],
)
def test_bad_settings_are_one_line_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        CalibConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_eval_data_fails_before_quantizing(model_dir, tmp_path):
    out = tmp_path / "o.onnx"
    with pytest.raises(InputError, match="nowhere"):
        quantize(model_dir / "tiny.onnx", out, CalibConfig(eval_data=f"folder:{tmp_path}/nowhere"))
    assert not list(tmp_path.iterdir())


def test_excluding_a_node_a_rewrite_replaced_keeps_what_it_became_in_float(model_dir, tmp_path):
    from gradgroup.calib.prepare import excluded_nodes

    name = next(n.name for n in onnx.load(str(model_dir / "tiny.onnx")).graph.node
                if n.op_type == "ConvTranspose")  # fmt: skip
    out = tmp_path / "tiny.int8.onnx"
    result = quantize(model_dir / "tiny.onnx", out, CalibConfig(nodes_to_exclude=(name,),
                                                                evaluate=False))  # fmt: skip
    assert f"{name}_subpixel" in result.float_nodes and name not in result.float_nodes
    conv = next(n for n in onnx.load(str(out)).graph.node if n.name == f"{name}_subpixel")
    weights = {i.name for i in onnx.load(str(out)).graph.initializer}
    assert conv.input[1] in weights  # a float weight, no DequantizeLinear in front of it
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"], name="kept")], "g", [], []
    )
    with pytest.raises(InputError, match="removed that node"):
        excluded_nodes(graph, ["gone"])
    assert excluded_nodes(graph, ["kept", "kept"]) == ("kept",)
