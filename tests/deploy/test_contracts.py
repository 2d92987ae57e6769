"""Shared contracts in deploy: classes, preprocessing, metadata, calibration sets, metrics."""

import numpy as np
import onnx
import pytest

from gradgroup.deploy.calibset import load_calibset, save_calibset
from gradgroup.deploy.classes import CITYSCAPES, ClassTable, cityscapes_label_lut, colorize
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta
from gradgroup.deploy.metrics import ConfusionMatrix
from gradgroup.deploy.preprocess import Preprocess, normalize, parse_size, preprocess, resize_frame


def test_cityscapes_table_and_label_lut():
    assert CITYSCAPES.num_classes == 19 and CITYSCAPES.names[0] == "road"
    lut = cityscapes_label_lut()
    assert lut[7] == 0 and lut[33] == 18 and lut[0] == 255 and lut[34] == 255


def test_colorize_matches_palette_and_blacks_out_ignore():
    ids = np.random.default_rng(0).integers(0, 19, (37, 53)).astype(np.uint8)
    ids[0, 0] = 255
    rgb = colorize(ids)
    assert np.array_equal(rgb, CITYSCAPES.palette_array()[ids])
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb.shape == (37, 53, 3)


def test_class_table_validation(tmp_path):
    with pytest.raises(InputError, match="2 names but 1 colours"):
        ClassTable(("a", "b"), ((0, 0, 0),))
    path = tmp_path / "classes.json"
    path.write_text('{"names": ["a"]}')
    with pytest.raises(InputError, match="malformed"):
        ClassTable.load(path)


def test_preprocess_resizes_reorders_and_normalizes():
    spec = Preprocess(4, 6, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    bgr = np.zeros((8, 12, 3), np.uint8)
    bgr[..., 0] = 50  # blue
    rgb = resize_frame(bgr, spec)
    assert rgb.shape == (4, 6, 3) and rgb[0, 0].tolist() == [0, 0, 50]
    x = preprocess(bgr, spec)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == pytest.approx([-5.0, -5.0, 4.0])
    nhwc = normalize(rgb, Preprocess(4, 6, layout="NHWC", color_order="BGR"))
    assert nhwc.shape == (1, 4, 6, 3)
    # A BGR frame kept BGR for a BGR model gives exactly the input the RGB detour gives.
    bgr_spec = Preprocess(4, 6, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0), color_order="BGR")
    same = resize_frame(bgr, spec, "BGR", out_order="BGR")
    np.testing.assert_array_equal(same, rgb[..., ::-1])
    np.testing.assert_array_equal(normalize(same, bgr_spec, "BGR"), normalize(rgb, bgr_spec))


@pytest.mark.parametrize(
    "frame,match",
    [
        (np.zeros((4, 4), np.uint8), "expected \\(H, W, 3\\)"),
        (np.zeros((4, 4, 3), np.float32), "dtype is float32"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_bad_frames_rejected(frame, match):
    with pytest.raises(InputError, match=match):
        preprocess(frame, Preprocess(4, 4))


def test_parse_size():
    assert parse_size("512x1024") == (512, 1024)
    with pytest.raises(InputError):
        parse_size("512")


def _tiny_graph() -> onnx.ModelProto:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 16])
    return helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    )


def test_metadata_roundtrip_and_fallback(caplog):
    model = _tiny_graph()
    meta = ModelMeta(
        arch="dg4-light",
        preprocess=Preprocess(8, 16),
        alpha=0.0,
        params=5,
        extra={"miou": 0.5},
        data="folder:/data/x",
    )
    write_meta(model, meta)
    write_meta(model, meta)  # rewriting replaces, never duplicates
    assert sum(p.key == "gradgroup.arch" for p in model.metadata_props) == 1
    back = read_meta(model)
    assert back == meta
    assert back.data == "folder:/data/x" and "data" not in back.extra
    bare = _tiny_graph()
    fallback = read_meta(bare)
    assert fallback.preprocess.size == (8, 16) and fallback.classes == CITYSCAPES
    assert fallback.data is None  # older models: no training data recorded
    assert "no gradgroup metadata" in caplog.text


def test_calibset_roundtrip_and_errors(tmp_path):
    spec = Preprocess(4, 6)
    images = np.random.default_rng(0).integers(0, 255, (3, 4, 6, 3)).astype(np.uint8)
    path = save_calibset(tmp_path / "c.npz", images, ["a", "b", "c"], spec)
    calib = load_calibset(path)
    assert len(calib) == 3 and calib.names == ("a", "b", "c") and calib.preprocess == spec
    assert calib.model_input(0).shape == (1, 3, 4, 6)
    assert calib.model_input(1, "uint8").dtype == np.uint8
    with pytest.raises(InputError, match="preprocessing says"):
        save_calibset(tmp_path / "d.npz", images, ["a", "b", "c"], Preprocess(5, 6))
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="not readable"):
        load_calibset(tmp_path / "bad.npz")


def test_confusion_matrix_ignores_255_and_computes_iou():
    cm = ConfusionMatrix(3)
    target = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    cm.update(target, pred)
    result = cm.result()
    assert result.iou[0] == pytest.approx(1 / 3) and result.iou[1] == pytest.approx(2 / 3)
    assert result.iou[2] == 0.0 and result.pixel_accuracy == pytest.approx(3 / 5)
    assert result.miou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_per_class_accuracy_macc_and_the_matrix():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]))
    result = cm.result()
    assert result.acc == pytest.approx((2 / 3, 1 / 2, 1.0))
    assert result.macc == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert result.matrix == ((2, 1, 0), (0, 1, 1), (0, 0, 1))
    assert all(type(v) is int for row in result.matrix for v in row)  # JSON-ready
    assert result.to_dict(("a", "b", "c"))["acc"]["b"] == 0.5


def test_a_class_absent_from_the_ground_truth_is_left_out_of_the_means():
    """Pinned (README "Training and evaluation"): unlike MMSeg, a class predicted but absent from
    the ground truth is not an IoU of 0 in the mean; its false positives count against the true
    class of those pixels. A class present but never predicted is a 0 in the mean."""
    cm = ConfusionMatrix(4)
    # class 2: predicted twice, never in the ground truth; class 3: present, never predicted
    cm.update(np.array([0, 0, 0, 0, 1, 1, 3]), np.array([0, 0, 2, 2, 1, 1, 1]))
    result = cm.result()
    assert np.isnan(result.iou[2]) and np.isnan(result.acc[2])
    assert result.to_dict()["iou"]["2"] is None and result.to_dict()["acc"]["2"] is None
    assert result.iou[0] == pytest.approx(2 / 4) and result.iou[3] == 0.0  # 2 FNs of class 0
    assert result.iou[1] == pytest.approx(2 / 3)
    assert result.miou == pytest.approx((2 / 4 + 2 / 3 + 0) / 3)  # MMSeg: (.5 + 2/3 + 0 + 0) / 4
    assert result.macc == pytest.approx((2 / 4 + 1 + 0) / 3)
    assert ConfusionMatrix(2).result().miou == 0.0  # nothing present: 0, not NaN


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    from gradgroup.deploy.fileio import atomic_path, write_text_atomic

    target = tmp_path / "sub" / "a.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == target.parent
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_json_the_project_writes_is_strict():
    import json
    import math

    from gradgroup.deploy.fileio import to_json

    text = to_json({"sqnr": {"conv": math.inf, "relu": 31.5}, "loss": [math.nan, 1.0]})
    assert json.loads(text) == {"sqnr": {"conv": None, "relu": 31.5}, "loss": [None, 1.0]}
    assert "Infinity" not in text and "NaN" not in text


def test_check_writable_creates_nothing_and_names_the_blocking_folder(tmp_path):
    from gradgroup.deploy.fileio import check_writable

    check_writable(tmp_path / "new" / "deep" / "m.onnx", "--out")
    check_writable(tmp_path / "run", "--out", folder=True)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, no folder was made
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"f is a file, not a folder"):
        check_writable(tmp_path / "f" / "sub" / "m.onnx", "--out")
    with pytest.raises(InputError, match=r"the folder /proc is not writable"):
        check_writable("/proc/gradgroup/m.onnx", "--out")


def test_folder_lock_is_exclusive_and_leaves_nothing(tmp_path):
    import os

    from gradgroup.deploy.fileio import folder_lock

    run = tmp_path / "a" / "run"
    with folder_lock(run, "training"):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        # flock conflicts between open file descriptions, in one process too.
        busy = rf"run is in use by another training \(pid {os.getpid()}\)"
        with pytest.raises(InputError, match=busy), folder_lock(run, "training"):
            pass
    assert list(tmp_path.iterdir()) == []  # the folders it made are empty again: removed
    run.mkdir(parents=True)
    (run / ".lock").write_text("12345\n")  # left by a killed run: the kernel dropped its lock
    with folder_lock(run, "training"):
        (run / "last.pt").write_text("")
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_a_file_size_limit_is_a_run_error_naming_the_file(tmp_path):
    import resource

    from gradgroup.deploy.errors import RunError
    from gradgroup.deploy.fileio import write_text_atomic

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # ulimit -f; Python ignores SIGXFSZ
    try:
        with pytest.raises(RunError, match=r"cannot write .*big\.json: File too large"):
            write_text_atomic(tmp_path / "big.json", "x" * 1000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []
