"""Calibration frames from every source kind, resized exactly as deploy resizes them."""

import cv2
import numpy as np
import pytest

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess, resize_frame
from gradgroup.deploy.sources import open_source
from gradgroup.export.calib_data import collect_calib_frames, parse_calib_spec

PRE = Preprocess(32, 64)
RNG = np.random.default_rng(0)


def _image(h=48, w=80):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_synthetic_matches_deploy_source():
    frames = collect_calib_frames("synthetic", 3, PRE, seed=5)
    assert frames.images.shape == (3, 32, 64, 3) and frames.images.dtype == np.uint8
    with open_source("synthetic", size=PRE.size, max_frames=3, seed=5) as src:
        expected = [resize_frame(f.image, PRE, "BGR") for f in src]
    np.testing.assert_array_equal(frames.images, np.stack(expected))
    assert frames.names == ["frame_000000", "frame_000001", "frame_000002"]


def test_images_folder_skips_corrupt_files_by_name(tmp_path, caplog):
    bgr = [_image() for _ in range(3)]
    for i, im in enumerate(bgr):
        cv2.imwrite(str(tmp_path / f"{i}.png"), im)
    (tmp_path / "1b_broken.png").write_bytes(b"garbage")
    frames = collect_calib_frames(f"images:{tmp_path}", 4, PRE)
    assert frames.skipped == ["1b_broken.png"]
    assert frames.names == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(frames.images[0], resize_frame(bgr[0], PRE, "BGR"))
    assert "1b_broken.png" in caplog.text


def test_too_few_usable_frames_is_an_input_error(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _image())
    for name in ("b.png", "c.png", "d.png"):
        (tmp_path / name).write_bytes(b"broken")
    with pytest.raises(InputError, match=r"1 usable frames of 4.*b\.png"):
        collect_calib_frames(f"images:{tmp_path}", 4, PRE)


def test_video_file(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 48))
    for _ in range(5):
        writer.write(_image())
    writer.release()
    frames = collect_calib_frames(f"video:{path}", 3, PRE)
    assert frames.images.shape == (3, 32, 64, 3) and len(frames.names) == 3


def test_cityscapes_train_images(tmp_path):
    for i in range(2):
        city = "aachen"
        img_dir = tmp_path / "leftImg8bit" / "train" / city
        lab_dir = tmp_path / "gtFine" / "train" / city
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img_dir / f"{city}_{i}_leftImg8bit.png"), _image())
        cv2.imwrite(
            str(lab_dir / f"{city}_{i}_gtFine_labelIds.png"), np.full((48, 80), 7, np.uint8)
        )
    frames = collect_calib_frames(f"cityscapes:{tmp_path}", 2, PRE)
    assert frames.names == ["aachen_0", "aachen_1"] and frames.images.shape == (2, 32, 64, 3)


@pytest.mark.parametrize(
    "spec", ["imagenet", "images", "synthetic:x", "video:/no/such.mp4", "images:/no/dir"]
)
def test_bad_specs(spec):
    with pytest.raises(InputError):
        parse_calib_spec(spec)


def test_video_spec_must_be_a_file(tmp_path):
    with pytest.raises(InputError, match="not a file"):
        parse_calib_spec(f"video:{tmp_path}")


def test_folder_dataset_train_images(tmp_path):
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (tmp_path / split / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "images" / f"{split}.png"), _image())
        cv2.imwrite(str(tmp_path / split / "masks" / f"{split}.png"), np.zeros((48, 80), np.uint8))
    frames = collect_calib_frames(f"folder:{tmp_path}", 1, PRE)
    assert frames.names == ["train"] and frames.images.shape == (1, 32, 64, 3)
    with pytest.raises(InputError, match="not a folder"):
        parse_calib_spec(f"folder:{tmp_path / 'train' / 'images' / 'train.png'}")


def test_synthetic_calibration_frames_are_not_validation_scenes():
    from gradgroup.deploy.datasets import VAL_SEED_OFFSET
    from gradgroup.deploy.scenes import render_scene

    frames = collect_calib_frames("synthetic", 2, PRE)  # the export default's seed 0: a train seed
    for i in range(2):
        val = resize_frame(render_scene(VAL_SEED_OFFSET + i, PRE.size)[0], PRE, "RGB")
        assert not any(np.array_equal(val, im) for im in frames.images)
    assert np.array_equal(frames.images[0], render_scene(0, PRE.size)[0])  # train scene 0
