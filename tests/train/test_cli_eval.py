"""``gradgroup eval``: checkpoints and ONNX models through the same deploy evaluation loop."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.train.evaluate import EvalConfig, evaluate_path
from gradgroup.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A labelled image folder at 32x64 (val split = train split, fine for a consistency check)."""
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(3):
        rng = np.random.default_rng(i)
        labels = np.repeat(rng.choice([0, 2, 10, 13], 4), 8)[:, None].repeat(64, 1).astype(np.uint8)
        labels[:, :4] = 255
        rgb = np.asarray(CITYSCAPES.palette, np.uint8)[np.minimum(labels, 18)]
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), labels)
    (root / "classes.json").write_text(json.dumps(CITYSCAPES.to_dict()))
    return root


def test_checkpoint_eval_matches_the_trainers_validation(folder, tmp_path):
    cfg = TrainConfig(
        arch="dg4-light", data=f"folder:{folder}", size=(32, 64), epochs=2, iters_per_epoch=2,
        batch_size=2, workers=0, progress=False, out=str(tmp_path),
    )  # fmt: skip
    result = train(cfg)
    ev = evaluate_path(tmp_path / "last.pt", EvalConfig(data=f"folder:{folder}", progress=False))
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
    bad = tmp_path / "model.txt"
    bad.write_text("x")
    assert main(["eval", str(bad)]) == 2
    assert "neither a .pt checkpoint nor an .onnx" in capsys.readouterr().err
