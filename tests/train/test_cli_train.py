"""``gradgroup train``: flags onto TrainConfig, one result line, resume reusing the run's config."""

import json

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.train.checkpoint import load_checkpoint


def write_folder(root, n=4):
    """A folder dataset (images/ + masks/) of class-coloured blocks at 32x64."""
    for i in range(n):
        rng = np.random.default_rng(i)
        labels = np.zeros((32, 64), np.uint8)
        for cls in rng.choice([2, 8, 10, 13], 3, replace=False):
            y, x = rng.integers(0, 24), rng.integers(0, 48)
            labels[y : y + 12, x : x + 20] = cls
        rgb = np.asarray(CITYSCAPES.palette, np.uint8)[labels]
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), labels)
    (root / "classes.json").write_text(json.dumps(CITYSCAPES.to_dict()))
    return root


ARGS = ["--size", "32x64", "--iters-per-epoch", "2", "--batch-size", "2", "--workers", "0",
        "--no-progress"]  # fmt: skip


def test_train_then_resume_with_only_out(tmp_path, capsys):
    data = write_folder(tmp_path / "data")
    out = tmp_path / "run"
    common = ["train", "--data", f"folder:{data}", "--out", str(out), *ARGS]
    assert main([*common, "--arch", "dg4-light", "--epochs", "2", "--lr", "1e-3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["iterations"] == 4 and result["converted"]
    # Extend the run: the saved settings (arch, lr, schedule...) come back, --epochs overrides.
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", *ARGS[:2]]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train done: dg4-light (gradual) 3 epochs, 6 it")
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["lr"] == 1e-3 and ckpt["config"]["data"] == f"folder:{data}"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["train", "--size", "30x64", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradgroup: error:") and "multiples of 8" in err and "\n" not in err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "config.json does not exist" in capsys.readouterr().err
    assert main(["train", "--data", "nope:dir", "--out", str(tmp_path / "y"), *ARGS]) == 2
    assert not (tmp_path / "y").exists()  # nothing left behind


@pytest.mark.parametrize("flag", ["--help"])
def test_help_lists_every_config_field(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", flag])
    text = capsys.readouterr().out
    for option in ("--alpha-span", "--finetune-epochs", "--max-minutes", "--resume", "--json"):
        assert option in text
