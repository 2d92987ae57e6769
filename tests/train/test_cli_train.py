"""``gradgroup train``: flags onto TrainConfig, one result line, resume reusing the run's config."""

import argparse
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.deploy.errors import InputError
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
    run = json.loads((out / "run.json").read_text())  # versions, command line, settings
    assert run["config"]["arch"] == "dg4-light" and run["config"]["lr"] == 1e-3
    assert run["versions"]["torch"] and run["command"] == sys.argv
    assert (out / "config.json").is_file()  # what --resume reads
    # Extend the run: the saved settings (arch, lr, schedule...) come back, --epochs overrides.
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", *ARGS[:2]]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train done: dg4-light (gradual) 3 epochs, 6 it")
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["lr"] == 1e-3 and ckpt["config"]["data"] == f"folder:{data}"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_resuming_a_run_saved_before_newer_settings_keeps_its_method(tmp_path):
    from gradgroup.train.cli_train import config_from_args, configure
    from gradgroup.train.recipe import ADDED_LATER, TrainConfig

    out = tmp_path / "old-run"
    out.mkdir()
    saved = {k: v for k, v in TrainConfig(out=str(out)).to_dict().items() if k not in ADDED_LATER}
    (out / "config.json").write_text(json.dumps(saved))
    parser = argparse.ArgumentParser()
    configure(parser)
    cfg = config_from_args(parser.parse_args(["--out", str(out), "--resume"]))
    # e.g. the run was trained with one alpha for every layer and no cross-group cap
    assert (cfg.layer_alpha, cfg.cross_cap, cfg.bn_recalib) == ("uniform", False, 0)
    assert TrainConfig.from_dict(saved).layer_alpha == "uniform"  # what last.pt's config gives
    assert TrainConfig().layer_alpha == "share"  # new runs get the new method
    (out / "config.json").write_text("[]")
    with pytest.raises(InputError, match="not a run's config"):
        config_from_args(parser.parse_args(["--out", str(out), "--resume"]))


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["train", "--size", "30x64", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradgroup: error:") and "multiples of 8" in err and "\n" not in err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "config.json does not exist" in capsys.readouterr().err
    assert main(["train", "--data", "nope:dir", "--out", str(tmp_path / "y"), *ARGS]) == 2
    assert not (tmp_path / "y").exists()  # nothing left behind


def test_a_second_training_into_the_same_out_is_refused(tmp_path, capsys):
    """Another process trains into --out (it holds OUT/.lock): this one stops before any work."""
    out = tmp_path / "run"
    script = (
        "import sys\nfrom gradgroup.deploy.fileio import folder_lock\n"
        f"with folder_lock({str(out)!r}, 'training'):\n"
        "    print('held', flush=True)\n    sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["train", "--out", str(out), "--epochs", "2", *ARGS]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"gradgroup: error: {out} is in use by another training (pid {holder.pid})"
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the holder's, untouched
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not out.exists()  # released (and tidied) on exit


@pytest.mark.parametrize("flag", ["--help"])
def test_help_lists_every_config_field(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", flag])
    text = capsys.readouterr().out
    for option in ("--alpha-span", "--finetune-epochs", "--max-minutes", "--resume", "--json"):
        assert option in text
