"""Shipped weights: the manifest's names and numbers hold, packing records a run exactly."""

import json

import pytest
from toy_data import Blocks

from gradgroup.deploy.errors import InputError
from gradgroup.train import weights
from gradgroup.train.checkpoint import load_checkpoint
from gradgroup.train.trainer import TrainConfig, train


def test_dense_start_of_every_zoo_family():
    assert weights.dense_start("dg4-light") == "d-light"
    assert weights.dense_start("dg8s-light") == "d-light"
    assert weights.dense_start("dg4-sel3-light") == "d-light"
    assert weights.dense_start("dg2") == "d" and weights.dense_start("erfnet") == "erfnet"


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    cfg = TrainConfig(arch="d-light", schedule="dense", size=(32, 64), epochs=1, iters_per_epoch=2,
                      batch_size=2, workers=0, progress=False, out=str(root / "run"))  # fmt: skip
    train(cfg, Blocks(4), Blocks(2, offset=100))
    folder = root / "shipped"
    entry = weights.pack(root / "run", "d-light.pt", ("gradgroup train ...",), "test", folder)
    return folder, entry


def test_pack_writes_tensors_only_and_a_manifest_that_checks(packed):
    folder, entry = packed
    ckpt = load_checkpoint(folder / "d-light.pt")
    assert set(ckpt) == {"model", "model_args", "classes", "preprocess", "alpha"}
    listed = json.loads((folder / weights.MANIFEST).read_text())["files"]
    assert [e["name"] for e in listed] == ["d-light.pt"] and listed[0]["sha256"] == entry.sha256
    assert entry.arch == "d-light" and entry.size == (32, 64) and entry.iterations == 2
    assert weights.find_shipped("dg4-light", folder) == folder / "d-light.pt"
    assert weights.find_shipped("erfnet", folder) is None
    [(checked, miou)] = weights.check(folder)
    assert checked == entry and miou == pytest.approx(entry.miou, abs=1e-5)  # (rounded)


def test_a_run_continued_from_a_shipped_file_records_its_whole_training(packed, tmp_path):
    folder, first = packed
    cfg = TrainConfig(arch="d-light", schedule="dense", size=(32, 64), epochs=1, iters_per_epoch=3,
                      batch_size=2, workers=0, progress=False, out=str(tmp_path / "run2"),
                      init=str(folder / "d-light.pt"))  # fmt: skip
    train(cfg, Blocks(4), Blocks(2, offset=100))
    copy = tmp_path / "shipped"
    copy.mkdir()
    for name in ("d-light.pt", weights.MANIFEST):
        (copy / name).write_bytes((folder / name).read_bytes())
    entry = weights.pack(tmp_path / "run2", "d-light.pt", ("continued",), "test", copy)
    assert entry.iterations == first.iterations + 3  # the --init file's 2 and this run's 3
    assert entry.train_minutes >= first.train_minutes


def test_a_continuation_packed_over_its_own_start_still_counts_the_start(packed, tmp_path):
    folder, first = packed
    copy = tmp_path / "shipped"
    copy.mkdir()
    for name in ("d-light.pt", weights.MANIFEST):
        (copy / name).write_bytes((folder / name).read_bytes())
    cfg = TrainConfig(arch="d-light", schedule="dense", size=(32, 64), epochs=1, iters_per_epoch=3,
                      batch_size=2, workers=0, progress=False, out=str(tmp_path / "run3"),
                      init=str(copy / "d-light.pt"))  # fmt: skip
    train(cfg, Blocks(4), Blocks(2, offset=100))
    entry = weights.pack(tmp_path / "run3", "d-light.pt", ("continued",), "test", copy)
    assert entry.iterations == first.iterations + 3 and entry.sha256 != first.sha256


def test_check_refuses_altered_files(packed, tmp_path):
    folder, _ = packed
    copy = tmp_path / "copy"
    copy.mkdir()
    data = (folder / "d-light.pt").read_bytes()
    (copy / "d-light.pt").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (copy / weights.MANIFEST).write_text((folder / weights.MANIFEST).read_text())
    with pytest.raises(InputError, match="does not match the sha256"):
        weights.check(copy)
    (copy / "d-light.pt").unlink()
    with pytest.raises(InputError, match="missing"):
        weights.check(copy)


def test_every_shipped_file_loads_tensors_only_and_keeps_its_manifest_miou():
    """The weights in the repository: small, code-free, and as good as the manifest says."""
    entries = weights.manifest(weights.weights_dir())
    assert {e.arch for e in entries} >= {"d-light", "erfnet"}  # the light models' start, ERFNet
    for entry in entries:
        path = weights.weights_dir() / entry.name
        assert path.stat().st_size <= 10 * 2**20 and entry.commands
        load_checkpoint(path)  # weights_only: refuses anything but tensors and plain data
    for entry, miou in weights.check():  # sha256, then mIoU on 50 held-out scenes
        assert abs(miou - entry.miou) <= weights.EVAL_TOLERANCE
