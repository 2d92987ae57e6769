"""``gradgroup eval``: checkpoints and ONNX models through the same deploy evaluation loop."""

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta
from gradgroup.train.checkpoint import checkpoint_data, load_checkpoint
from gradgroup.train.evaluate import EvalConfig, evaluate_path
from gradgroup.train.trainer import TrainConfig, train


def _write_folder(root, h=32, w=64):
    """A labelled image folder at ``h``x``w`` (val split = train split, fine for consistency)."""
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(3):
        rng = np.random.default_rng(i)
        rows = np.repeat(rng.choice([0, 2, 10, 13], 4), h // 4)
        labels = rows[:, None].repeat(w, 1).astype(np.uint8)
        labels[:, : w // 16] = 255
        rgb = np.asarray(CITYSCAPES.palette, np.uint8)[np.minimum(labels, 18)]
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), labels)
    (root / "classes.json").write_text(json.dumps(CITYSCAPES.to_dict()))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    """Labels at 64x128, twice the tiny model's 32x64 in each direction."""
    return _write_folder(tmp_path_factory.mktemp("big"), 64, 128)


def test_checkpoint_eval_matches_the_trainers_validation(folder, tmp_path):
    cfg = TrainConfig(
        arch="dg4-light", data=f"folder:{folder}", size=(32, 64), epochs=2, iters_per_epoch=2,
        batch_size=2, workers=0, progress=False, out=str(tmp_path),
    )  # fmt: skip
    result = train(cfg)
    spec = f"folder:{folder.resolve()}"
    assert checkpoint_data(load_checkpoint(tmp_path / "last.pt")) == spec  # recorded, absolute
    ev = evaluate_path(tmp_path / "last.pt", EvalConfig(progress=False))  # default: model's data
    assert ev.data == spec and ev.split == "val"
    assert ev.kind == "checkpoint" and ev.images == 3 and ev.size == (32, 64)
    assert ev.miou == pytest.approx(result.miou, abs=1e-4)  # batched torch loop == deploy loop
    assert set(k for k, v in ev.iou.items() if v is not None) <= {"road", "building", "sky", "car"}


def test_onnx_eval_runs_without_torch(tiny_onnx, folder):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any torch import now fails
        "from gradgroup.cli import main\n"
        f"sys.exit(main(['eval', {str(tiny_onnx)!r}, '--data', 'folder:{folder}', '--limit', '2', "
        "'--json', '--no-progress']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kind"] == "onnx" and out["images"] == 2 and 0.0 <= out["miou"] <= 1.0


def test_table_output_and_bad_model(tiny_onnx, folder, tmp_path, capsys):
    assert main(["eval", str(tiny_onnx), "--data", f"folder:{folder}", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "road" in text and text.strip().splitlines()[-1].startswith("eval done: mIoU")
    assert "Acc %" in text and ", mAcc " in text and "at 32x64" in text
    assert re.search(r"^sidewalk +- +-$", text, re.M)  # absent from the labels: "-"
    bad = tmp_path / "model.txt"
    bad.write_text("x")
    assert main(["eval", str(bad)]) == 2
    assert "neither a .pt checkpoint nor an .onnx" in capsys.readouterr().err


def test_full_res_scores_at_the_labels_size_and_json_has_the_matrix(tiny_onnx, big_folder, capsys):
    data = ["--data", f"folder:{big_folder}", "--no-progress", "--json"]
    assert main(["eval", str(tiny_onnx), *data]) == 0
    low = json.loads(capsys.readouterr().out)
    assert main(["eval", str(tiny_onnx), *data, "--full-res"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert (low["full_res"], full["full_res"]) == (False, True) and full["size"] == [32, 64]
    labelled = 3 * 64 * (128 - 8)  # every pixel but the ignored columns
    assert sum(map(sum, full["confusion"])) == labelled
    assert sum(map(sum, low["confusion"])) == labelled // 4  # labels downsampled to 32x64
    assert full["classes"] == list(CITYSCAPES.names) and len(full["confusion"]) == 19
    assert all(isinstance(v, int) for row in full["confusion"] for v in row)
    assert set(full["acc"]) == set(full["iou"]) and 0.0 <= full["macc"] <= 1.0
    assert full["acc"]["person"] is None and full["iou"]["person"] is None  # absent
    # A 2x nearest upsampling turns each predicted pixel into 4: predicted counts exactly x4.
    predicted = np.sum(full["confusion"], axis=0)
    assert predicted.tolist() == (4 * np.sum(low["confusion"], axis=0)).tolist()


def test_onnx_eval_defaults_to_the_data_in_its_metadata(tiny_onnx, folder, tmp_path, capsys):
    import onnx

    proto = onnx.load(str(tiny_onnx))
    write_meta(proto, ModelMeta(**{**vars(read_meta(proto)), "data": f"folder:{folder}"}))
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    ev = evaluate_path(path, EvalConfig(limit=1, progress=False))
    assert ev.data == f"folder:{folder}" and ev.images == 1
    old = evaluate_path(tiny_onnx, EvalConfig(limit=1, progress=False))  # no data recorded
    assert old.data == "synthetic" and old.size == (32, 64)
    write_meta(proto, ModelMeta(**{**vars(read_meta(proto)), "data": f"folder:{tmp_path}/gone"}))
    onnx.save(proto, str(path))
    assert main(["eval", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose the data with --data" in err
