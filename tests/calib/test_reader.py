"""Calibration-set discovery, checks and ORT's data-reader protocol."""

import shutil

import numpy as np
import pytest

from gradgroup.calib.reader import CalibSetReader, default_set_path, resolve_calibset
from gradgroup.deploy.calibset import load_calibset
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metadata import ModelMeta
from gradgroup.deploy.preprocess import Preprocess

META = ModelMeta(arch="dg4-light", preprocess=Preprocess(32, 64))


def test_reader_yields_each_frame_once_then_none_and_rewinds(model_dir):
    calib = load_calibset(model_dir / "tiny.calib.npz")
    reader = CalibSetReader(calib, "input", "float32", limit=3)
    feeds = list(iter(reader.get_next, None))
    assert len(feeds) == 3 == len(reader)
    assert feeds[0]["input"].shape == (1, 3, 32, 64) and feeds[0]["input"].dtype == np.float32
    assert not np.array_equal(feeds[0]["input"], feeds[1]["input"])
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["input"], feeds[0]["input"])


def test_reader_gives_raw_uint8_for_uint8_models(model_dir):
    calib = load_calibset(model_dir / "tiny.calib.npz")
    feed = CalibSetReader(calib, "x", "uint8").get_next()["x"]
    assert feed.dtype == np.uint8 and feed.shape == (1, 3, 32, 64)


def test_default_set_next_to_model_is_found(model_dir):
    assert default_set_path(model_dir / "tiny.onnx") == model_dir / "tiny.calib.npz"
    calib, source = resolve_calibset(model_dir / "tiny.onnx", META)
    assert len(calib) == 8 and source.endswith("tiny.calib.npz")


def test_missing_set_falls_back_to_scenes_and_says_so(tmp_path, caplog):
    calib, source = resolve_calibset(tmp_path / "m.onnx", META)
    assert "procedural scenes" in source
    assert calib.images.shape[1:] == (32, 64, 3) and len(calib) >= 4
    assert "no calibration set" in caplog.text


def test_explicit_set_of_wrong_size_or_missing_is_an_input_error(
    model_dir, tmp_path, calibset_factory
):
    big = calibset_factory(tmp_path / "big.npz", (16, 32), frames=2)
    with pytest.raises(InputError, match="16x32 frames but the model takes 32x64"):
        resolve_calibset(model_dir / "tiny.onnx", META, big)
    with pytest.raises(InputError, match="does not exist"):
        resolve_calibset(model_dir / "tiny.onnx", META, tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    shutil.copy(model_dir / "tiny.onnx", bad)  # not an npz at all
    with pytest.raises(InputError, match="not readable"):
        resolve_calibset(model_dir / "tiny.onnx", META, bad)


def test_explicit_set_of_wrong_dtype_is_an_input_error(model_dir, tmp_path):
    import json
    from dataclasses import asdict

    bad = tmp_path / "float.npz"
    images = np.zeros((2, 32, 64, 3), np.float32)
    pre = json.dumps(asdict(Preprocess(32, 64)))
    np.savez(bad, images=images, names=np.array(["a", "b"]), preprocess=np.asarray(pre))
    with pytest.raises(InputError, match="float32"):
        resolve_calibset(model_dir / "tiny.onnx", META, bad)
