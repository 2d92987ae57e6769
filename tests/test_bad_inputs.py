"""Bad input ends in one clear line and a non-zero exit, never a traceback, and touches nothing.

Each row is a command a user could type with a broken or wrong input; grow the table with every
defect found (issue 13).
"""

import pytest
import torch

from gradgroup.cli import main


def _files(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "one-byte.pt").write_bytes(b"\x81")
    torch.save({"model": {}, "model_args": "erfnet"}, tmp_path / "args-string.pt")
    (tmp_path / "empty.onnx").write_bytes(b"")
    return tmp_path


CASES = {
    "eval a one-byte checkpoint": ["eval", "{d}/one-byte.pt"],
    "eval a checkpoint whose model_args is a string": ["eval", "{d}/args-string.pt"],
    "check a 0-byte ONNX file": ["check", "{d}/empty.onnx"],
    "eval a 0-byte ONNX file": ["eval", "{d}/empty.onnx"],
    "bench a 0-byte ONNX file": ["bench", "{d}/empty.onnx", "--runs", "1"],
    "train from a missing --init": [
        "train",
        "--init",
        "{d}/nope.pt",
        "--out",
        "{d}/run",
        "--size",
        "32x64",
        "--no-progress",
    ],  # fmt: skip
    "train from a one-byte --init": [
        "train",
        "--init",
        "{d}/one-byte.pt",
        "--out",
        "{d}/run",
        "--size",
        "32x64",
        "--no-progress",
        "--train-length",
        "2",
        "--val-length",
        "1",
        "--epochs",
        "2",
    ],  # fmt: skip
    "models at a size the zoo cannot run": ["models", "--size", "13x17"],
    "models at a size that cannot fit in memory": ["models", "--size", "100000x100000"],
    "pipeline with an odd deployment size": [
        "pipeline",
        "--deploy-size",
        "100x77",
        "--out",
        "{d}/pp",
    ],
}


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_nothing_is_written(inputs, capsys, argv):
    before = _files(inputs)
    code = main([a.format(d=inputs) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gradgroup: error:")]
    assert len(errors) == 1, err
    assert _files(inputs) == before
