"""Calibration and accuracy data default to the model's own training data (its metadata)."""

import dataclasses

import cv2
import numpy as np
import pytest

from gradgroup.calib.accuracy import load_eval_frames
from gradgroup.calib.reader import resolve_calibset, scene_calibset
from gradgroup.deploy.datasets import VAL_SEED_OFFSET
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metadata import ModelMeta
from gradgroup.deploy.preprocess import Preprocess

META = ModelMeta(arch="dg4-light", preprocess=Preprocess(32, 64))


@pytest.fixture
def data(tmp_path):
    """A folder:DIR dataset: train images 40x80 of value 10, val images of value 200."""
    for split, value in (("train", 10), ("val", 200)):
        for sub in ("images", "masks"):
            (tmp_path / split / sub).mkdir(parents=True)
        for i in range(2):
            name = f"{split}{i}.png"
            cv2.imwrite(
                str(tmp_path / split / "images" / name), np.full((40, 80, 3), value, np.uint8)
            )
            cv2.imwrite(str(tmp_path / split / "masks" / name), np.full((40, 80), i, np.uint8))
    return tmp_path


def test_without_a_set_the_models_train_images_calibrate(data, tmp_path, caplog):
    meta = dataclasses.replace(META, data=f"folder:{data}")
    calib, source = resolve_calibset(tmp_path / "m.onnx", meta)
    assert calib.names == ("train0", "train1") and source == f"folder:{data} train (2 frames)"
    assert calib.images.shape == (2, 32, 64, 3) and int(calib.images.max()) == 10
    assert "the model's data" in caplog.text


def test_models_data_not_here_or_synthetic_falls_back_to_training_seed_scenes(tmp_path, caplog):
    for data in (str(f"folder:{tmp_path / 'gone'}"), "synthetic", None):
        calib, source = resolve_calibset(tmp_path / "m.onnx", dataclasses.replace(META, data=data))
        assert "procedural scenes" in source
    assert "not usable for calibration" in caplog.text
    seeds = [int(name.removeprefix("scene")) for name in scene_calibset(META).names]
    assert max(seeds) < VAL_SEED_OFFSET  # never the validation scenes


def test_eval_data_model_is_the_val_split_of_the_models_data(data):
    meta = dataclasses.replace(META, data=f"folder:{data}")
    pairs, source = load_eval_frames("model", meta, 2, "m.onnx")
    assert source == f"folder:{data} val (2 frames)" and int(pairs[0][0].max()) == 200
    _, source = load_eval_frames("model", META, 1, "m.onnx")  # older model: no data recorded
    assert source == "synthetic val (1 frames)"
    _, source = load_eval_frames("synthetic", meta, 1, "m.onnx")  # an explicit spec wins
    assert source.startswith("synthetic val")
    with pytest.raises(InputError, match="--eval-data"):
        load_eval_frames("model", dataclasses.replace(META, data="cityscapes:/gone"), 1, "m")
