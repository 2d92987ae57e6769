"""``gradgroup predict`` and ``Segmenter.predict``: files per format, folders, skips, resume."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy.classes import CITYSCAPES, ClassTable, cityscapes_label_lut
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.prediction import Prediction, output_path
from gradgroup.deploy.runtime import Segmenter
from gradgroup.deploy.sources import FolderSource
from gradgroup.deploy.view import overlay

H, W = 48, 96  # not the model's 32x64: predictions come back at the input's size
NAMES = ["a.png", "city1/b.jpg", "city1/c.png", "city2/deep/d.png"]
LABEL_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2] = (180, 130, 70)
    img[H // 2 :] = (128, 64, 128)
    img[10:40, 8 + 10 * i : 40 + 10 * i] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


@pytest.fixture
def images(tmp_path):
    """A folder with sub-folders, four images, one corrupt file and a hidden temp file."""
    root = tmp_path / "images"
    for i, name in enumerate(NAMES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), _image(i))
    (root / "city1" / "bad.png").write_bytes(b"not a png")
    (root / ".a.tmp.png").write_bytes(b"half written")
    return root


def _predict(capsys, *argv) -> tuple[int, dict | None, str]:
    rc = main(["predict", *map(str, argv), "--no-progress", "--json"])
    captured = capsys.readouterr()
    return rc, json.loads(captured.out) if rc in (0, 130) else None, captured.err


def _error_line(capsys, argv) -> str:
    rc = main(["predict", *map(str, argv), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("gradgroup: error: "), err
    return err


def _files(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_every_format_with_sub_folders_and_a_bad_image(tiny_onnx, images, tmp_path, capsys, caplog):
    out = tmp_path / "pred"
    with caplog.at_level(logging.WARNING):
        rc, summary, _ = _predict(
            capsys, tiny_onnx, images, "--out", out, "--format", "trainid,labelid",
            "--format", "color", "--format", "overlay", "--threads", "1",
        )  # fmt: skip
    assert rc == 0
    assert summary["images"] == 4 and summary["files"] == 16 and summary["resumed"] == 0
    assert summary["skipped"] == 1 and summary["skipped_names"] == ["city1/bad.png"]
    assert summary["fps"] > 0 and summary["seconds"] > 0
    warned = [r.getMessage() for r in caplog.records if "bad.png" in r.getMessage()]
    assert len(warned) == 1 and "city1/bad.png" in warned[0]
    stems = [n.rsplit(".", 1)[0] + ".png" for n in NAMES]
    want = sorted(f"{fmt}/{s}" for fmt in ("trainid", "labelid", "color", "overlay") for s in stems)
    assert _files(out) == sorted([".gradgroup-predict.json", *want])

    seg = Segmenter(tiny_onnx, threads=1)
    palette = CITYSCAPES.palette_array()
    for name in NAMES:
        image = cv2.imread(str(images / name))
        ids = cv2.imread(str(output_path(out, name, "trainid")), cv2.IMREAD_UNCHANGED)
        assert ids.shape == (H, W) and ids.dtype == np.uint8
        np.testing.assert_array_equal(ids, seg(image).class_map)
        labels = cv2.imread(str(output_path(out, name, "labelid")), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(labels).tolist()) <= LABEL_IDS
        np.testing.assert_array_equal(cityscapes_label_lut()[labels], ids)
        colour = cv2.imread(str(output_path(out, name, "color")))  # palette expanded, BGR
        np.testing.assert_array_equal(colour, palette[ids][..., ::-1])
        blended = cv2.imread(str(output_path(out, name, "overlay")))
        np.testing.assert_array_equal(blended, overlay(image, ids, CITYSCAPES, 0.5))


def test_color_is_an_indexed_png_of_the_class_ids(tiny_onnx, images, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    table = ClassTable(("road", "car", "sky"), ((1, 2, 3), (200, 100, 50), (0, 0, 255)))
    ids = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    path = Prediction("x.png", ids, table).save(tmp_path / "x.png", "color")
    with pil.open(path) as img:
        assert img.mode == "P"
        np.testing.assert_array_equal(np.asarray(img), ids)
        assert img.getpalette()[:9] == [1, 2, 3, 200, 100, 50, 0, 0, 255]


def test_resume_after_an_interrupt_skips_finished_files(
    tiny_onnx, images, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "pred"
    argv = (tiny_onnx, images, "--out", out, "--format", "trainid,color", "--threads", "1")
    real_save, calls = Prediction.save, []

    def save_then_interrupt(self, path, format="color", opacity=0.5):
        calls.append(path)
        if len(calls) == 4:  # the second format of the second image
            raise KeyboardInterrupt
        return real_save(self, path, format, opacity)

    monkeypatch.setattr(Prediction, "save", save_then_interrupt)
    rc, summary, _ = _predict(capsys, *argv)
    assert rc == 130 and summary["interrupted"] and summary["images"] == 1
    monkeypatch.setattr(Prediction, "save", real_save)
    # Nothing half-written: the interrupted file is absent, not truncated.
    done = ["color/a.png", "trainid/a.png", "trainid/city1/b.png"]
    assert _files(out) == [".gradgroup-predict.json", *done]
    first = (out / "trainid/a.png").stat().st_mtime_ns

    rc, summary, _ = _predict(capsys, *argv)
    assert rc == 0 and not summary["interrupted"]
    assert summary["resumed"] == 1 and summary["images"] == 3 and summary["files"] == 5
    assert (out / "trainid/a.png").stat().st_mtime_ns == first
    assert len(_files(out)) == 1 + 2 * len(NAMES)

    rc, summary, _ = _predict(capsys, *argv)  # all done: nothing to do
    assert rc == 0 and summary["resumed"] == 4 and summary["images"] == 0
    rc, summary, _ = _predict(capsys, *argv, "--overwrite")
    assert rc == 0 and summary["images"] == 4 and summary["files"] == 8


def test_another_model_into_the_same_folder_is_refused(tiny_onnx, images, tmp_path, capsys):
    import onnx

    out = tmp_path / "pred"
    assert _predict(capsys, tiny_onnx, images / "a.png", "--out", out)[0] == 0
    other = onnx.load(str(tiny_onnx))
    other.doc_string = "retrained"
    onnx.save(other, str(tmp_path / "other.onnx"))
    err = _error_line(capsys, [tmp_path / "other.onnx", images, "--out", out])
    assert "another model" in err and "--overwrite" in err
    rc, summary, _ = _predict(capsys, tmp_path / "other.onnx", images, "--out", out, "--overwrite")
    assert rc == 0 and summary["images"] == 4


@pytest.mark.parametrize(
    "place, expect",
    [("afile/pred", "is a file, not a folder"), ("afile", "is a file; give a folder")],
)
def test_bad_output_location_is_one_line_before_any_work(
    tiny_onnx, images, tmp_path, capsys, monkeypatch, place, expect
):
    (tmp_path / "afile").write_text("x")

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(Segmenter, "__init__", no_work)
    assert expect in _error_line(capsys, [tiny_onnx, images, "--out", tmp_path / place])


def test_bad_inputs_are_one_line(tiny_onnx, images, tmp_path, capsys):
    import onnx

    from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta
    from gradgroup.deploy.preprocess import Preprocess

    out = tmp_path / "pred"
    assert "does not exist" in _error_line(capsys, [tiny_onnx, tmp_path / "nope", "--out", out])
    err = _error_line(capsys, [tiny_onnx, images, "--out", out, "--format", "colour"])
    assert "did you mean 'color'" in err
    assert "must be between 0 and 1" in _error_line(
        capsys, [tiny_onnx, images, "--out", out, "--opacity", "2"]
    )
    assert "has no end" in _error_line(capsys, [tiny_onnx, "synthetic", "--out", out])
    # labelid is Cityscapes' numbering: refused for a model of other classes.
    proto = onnx.load(str(tiny_onnx))
    size = read_meta(proto).preprocess.size
    table = ClassTable(("a", "b"), ((0, 0, 0), (255, 255, 255)))
    write_meta(proto, ModelMeta(classes=table, preprocess=Preprocess(*size)))
    onnx.save(proto, str(tmp_path / "two.onnx"))
    err = _error_line(capsys, [tmp_path / "two.onnx", images, "--out", out, "--format", "labelid"])
    assert "19 Cityscapes classes" in err
    # Two inputs that would write the same file.
    cv2.imwrite(str(images / "a.jpg"), _image(0))
    err = _error_line(capsys, [tiny_onnx, images, "--out", out])
    assert "a.jpg" in err and "a.png" in err and "rename one" in err
    assert not out.exists()  # refused before anything was written


def test_video_frames_and_a_single_image(tiny_onnx, images, tmp_path, capsys):
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    for i in range(3):
        writer.write(_image(i))
    writer.release()
    rc, summary, _ = _predict(
        capsys, tiny_onnx, video, "--out", tmp_path / "v", "--format", "trainid"
    )
    assert rc == 0 and summary["images"] == 3
    assert _files(tmp_path / "v/trainid") == [f"frame_{i:06d}.png" for i in range(3)]
    rc, summary, _ = _predict(capsys, tiny_onnx, images / "city1/b.jpg", "--out", tmp_path / "one")
    assert rc == 0 and summary["images"] == 1
    assert (tmp_path / "one/color/b.png").is_file()


def test_python_api(tiny_onnx, images, tmp_path):
    from gradgroup import Segmenter as Exported

    seg = Exported(tiny_onnx, threads=1)
    preds = list(seg.predict(images))
    assert [p.name for p in preds] == NAMES  # sub-folders kept, bad and hidden files left out
    pred = preds[1]
    assert pred.class_names == CITYSCAPES.names and pred.class_map.shape == (H, W)
    assert pred.colorize().shape == (H, W, 3)
    info = pred.to_dict()
    assert info["name"] == "city1/b.jpg" and info["height"] == H and info["width"] == W
    assert abs(sum(c["share"] for c in info["classes"]) - 1.0) < 1e-3
    assert {c["name"] for c in info["classes"]} <= set(CITYSCAPES.names)
    saved = pred.save(tmp_path / "x" / "b.png", "labelid")
    labels = cv2.imread(str(saved), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cityscapes_label_lut()[labels], pred.class_map)
    (single,) = seg.predict(_image(0))
    assert single.class_map.shape == (H, W)
    with pytest.raises(InputError, match="not one of"):
        pred.encode("jpeg")
    assert len(list(seg.predict(images, max_frames=2))) == 2


def test_folder_source_lists_sub_folders_only_when_asked(images):
    flat = [f.name for f in FolderSource(images, None)]
    assert flat == ["a.png"]
    deep = FolderSource(images, None, recursive=True)
    assert [f.name for f in deep] == NAMES and deep.skipped == ["city1/bad.png"]


def test_train_to_label_table_inverts_the_label_to_train_table():
    from gradgroup.deploy.classes import cityscapes_train_to_label_lut

    to_label = cityscapes_train_to_label_lut()
    assert set(to_label[:19].tolist()) == LABEL_IDS
    np.testing.assert_array_equal(cityscapes_label_lut()[to_label[:19]], np.arange(19))
    assert to_label[255] == 0  # ignore -> Cityscapes' "unlabeled"
