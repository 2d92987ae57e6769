"""Labelled datasets: synthetic scenes, a Cityscapes-shaped tree and folder pairs built here."""

import json
import logging

import cv2
import numpy as np
import pytest

from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.deploy.datasets import VAL_SEED_OFFSET, Sample, open_dataset
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.scenes import render_scene


def test_synthetic_splits_are_disjoint_and_deterministic():
    train = open_dataset("synthetic", "train", size=(32, 64), length=3)
    val = open_dataset("synthetic", "val", size=(32, 64), length=2)
    assert len(train) == 3 and len(val) == 2 and train.classes == CITYSCAPES
    s = train[1]
    assert isinstance(s, Sample) and s.image.shape == (32, 64, 3) and s.labels.shape == (32, 64)
    assert s.name == "scene_00000001"
    assert val[0].name == f"scene_{VAL_SEED_OFFSET:08d}"
    rgb, lab = render_scene(VAL_SEED_OFFSET + 1, (32, 64))
    assert np.array_equal(val[1].image, rgb) and np.array_equal(val[-1].labels, lab)
    assert not np.array_equal(train[0].image, val[0].image)
    with pytest.raises(IndexError):
        train[3]


def test_synthetic_defaults():
    assert len(open_dataset("synthetic")) == 2000
    val = open_dataset("synthetic", "val")
    assert len(val) == 200 and val[0].image.shape == (256, 512, 3)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _cityscapes(root, split="train", cities=("aachen", "bonn"), n=2):
    label_ids = np.zeros((16, 32), np.uint8)  # 0 = unlabeled -> ignore
    label_ids[8:] = 7  # road -> 0
    label_ids[8:, :8] = 26  # car -> 13
    for city in cities:
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            _png(
                root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                np.full((16, 32, 3), 40 * i, np.uint8),
            )
            _png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    _cityscapes(tmp_path)
    ds = open_dataset(f"cityscapes:{tmp_path}", "train")
    assert len(ds) == 4 and ds.classes == CITYSCAPES
    s = ds[0]
    assert s.name == "aachen_000000_000019" and s.image.shape == (16, 32, 3)
    assert s.labels[0, 0] == 255 and s.labels[15, 31] == 0 and s.labels[15, 0] == 13
    assert len(open_dataset(f"cityscapes:{tmp_path}", "train", length=3)) == 3


def test_cityscapes_layout_errors_name_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="leftImg8bit/val"):
        open_dataset(f"cityscapes:{tmp_path}", "val")
    _cityscapes(tmp_path)
    (tmp_path / "leftImg8bit" / "val").mkdir()
    with pytest.raises(InputError, match="gtFine/val"):
        open_dataset(f"cityscapes:{tmp_path}", "val")
    missing = tmp_path / "gtFine" / "train" / "bonn" / "bonn_000001_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(InputError, match="bonn_000001_000019_gtFine_labelIds.png"):
        open_dataset(f"cityscapes:{tmp_path}", "train")


def test_cityscapes_corrupt_image_names_the_file(tmp_path):
    _cityscapes(tmp_path, cities=("aachen",), n=1)
    image = tmp_path / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
    image.write_bytes(b"garbage")
    ds = open_dataset(f"cityscapes:{tmp_path}")
    with pytest.raises(InputError, match="aachen_000000_000019_leftImg8bit.png"):
        ds[0]


def _folder(root, split=None, n=2, table=True):
    base = root / split if split else root
    for i in range(n):
        _png(base / "images" / f"im{i}.png", np.full((10, 12, 3), 30 * i, np.uint8))
        mask = np.zeros((10, 12), np.uint8)
        mask[:, 6:] = 1
        mask[0, 0] = 255
        _png(base / "masks" / f"im{i}.png", mask)
    if table:
        (root / "classes.json").write_text(
            json.dumps({"names": ["bg", "thing"], "palette": [[0, 0, 0], [255, 0, 0]]})
        )


def test_folder_pairs_with_splits(tmp_path):
    _folder(tmp_path, "train", n=3)
    _folder(tmp_path, "val", n=1)
    train = open_dataset(f"folder:{tmp_path}", "train")
    val = open_dataset(f"folder:{tmp_path}", "val")
    assert len(train) == 3 and len(val) == 1
    assert train.classes.names == ("bg", "thing")
    s = train[2]
    assert s.name == "im2" and s.image[0, 0, 0] == 60
    assert s.labels[5, 0] == 0 and s.labels[5, 11] == 1 and s.labels[0, 0] == 255


def test_folder_single_set_is_used_for_both_splits_with_a_warning(tmp_path, caplog):
    _folder(tmp_path, table=False)
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(f"folder:{tmp_path}", "val")
    assert len(ds) == 2 and ds.classes == CITYSCAPES
    assert "both train and val" in caplog.text and "classes.json" in caplog.text


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(f"folder:{tmp_path / 'none'}")
    with pytest.raises(InputError, match="images/"):
        open_dataset(f"folder:{tmp_path}")
    _folder(tmp_path)
    (tmp_path / "masks" / "im1.png").unlink()
    with pytest.raises(InputError, match="im1.png"):
        open_dataset(f"folder:{tmp_path}")
    _png(tmp_path / "masks" / "im1.png", np.full((10, 12), 5, np.uint8))  # id 5 of 2 classes
    with pytest.raises(InputError, match="class id 5"):
        open_dataset(f"folder:{tmp_path}")[1]
    _png(tmp_path / "masks" / "im1.png", np.zeros((10, 12, 3), np.uint8))  # colour mask
    with pytest.raises(InputError, match="single-channel"):
        open_dataset(f"folder:{tmp_path}")[1]
    _png(tmp_path / "masks" / "im1.png", np.zeros((9, 12), np.uint8))
    with pytest.raises(InputError, match="its image"):
        open_dataset(f"folder:{tmp_path}")[1]


@pytest.mark.parametrize(
    ("spec", "split"), [("imagenet", "train"), ("folder:", "train"), ("synthetic", "test")]
)
def test_bad_spec_or_split(spec, split):
    with pytest.raises(InputError):
        open_dataset(spec, split)


def test_model_data_resolves_to_the_recorded_spec_and_an_explicit_one_wins(tmp_path, monkeypatch):
    from gradgroup.deploy.datasets import MODEL_DATA, absolute_spec, resolve_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cs").mkdir()
    recorded = absolute_spec("cityscapes:cs")
    assert recorded == f"cityscapes:{tmp_path / 'cs'}" and absolute_spec("synthetic") == "synthetic"
    assert resolve_data(MODEL_DATA, recorded) == recorded
    assert resolve_data(MODEL_DATA, None) == "synthetic"  # older models: no field, no error
    assert resolve_data("folder:/elsewhere", recorded) == "folder:/elsewhere"
    with pytest.raises(InputError, match=r"trained on cityscapes:/gone.*--eval-data"):
        resolve_data(MODEL_DATA, "cityscapes:/gone", "--eval-data")
