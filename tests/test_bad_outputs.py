"""Bad output locations end in one clear line before any work, never a traceback (issue 13.3).

Every place here fails for root too: an output whose parent is a regular file, an output that is
an existing folder (a file where a folder is wanted), a path under /proc. A sentinel on each
command's first real step proves the check comes before the work.
"""

import errno
import resource

import pytest

from gradgroup.cli import main

SENTINELS = (  # the first step of real work of each command
    "gradgroup.train.trainer._Run",
    "gradgroup.export.onnx_export._torch_export",
    "gradgroup.calib.prepare.prepare",
    "gradgroup.deploy.bench.benchmark",
    "gradgroup.deploy.demo._open_segmenter",
    "gradgroup.stages.train_models",
    "gradgroup.deploy.runtime.Segmenter",
)

FILE_COMMANDS = {  # command -> (argv with {out}, the output's suffix)
    "export": (["export", "{ckpt}", "--out", "{out}", "--calib-frames", "2"], ".onnx"),
    "calib": (["calib", "{onnx}", "--out", "{out}", "--no-eval", "--calib-frames", "2"], ".onnx"),
    "bench": (["bench", "{onnx}", "--runs", "1", "--warmup", "0", "--json-out", "{out}"], ".json"),
    "demo": (["demo", "{onnx}", "--max-frames", "1", "--out", "{out}"], ".mp4"),
}
FOLDER_COMMANDS = {
    "train": ["train", "--out", "{out}", "--size", "32x64", "--epochs", "2", "--no-progress"],
    "pipeline": ["pipeline", "--out", "{out}", "--size", "32x64", "--budget-min", "0.01"],
    "predict": ["predict", "{onnx}", "synthetic", "--max-frames", "1", "--out", "{out}"],
}
FILE_PLACES = {
    "parent is a file": "{d}/afile/x{suffix}",
    "is a folder": "{d}/adir{suffix}",
    "under /proc": "/proc/gradgroup-test/x{suffix}",
}
FOLDER_PLACES = {
    "parent is a file": "{d}/afile/run",
    "is a file": "{d}/afile",
    "under /proc": "/proc/gradgroup-test-run",
}


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A folder with a regular file and suffixed folders; every command's work is a tripwire."""
    from gradgroup.deploy.preprocess import Preprocess
    from gradgroup.train.checkpoint import model_state, save_checkpoint
    from gradgroup.train.grouping import set_alpha
    from gradgroup.train.models import create_model

    (tmp_path / "afile").write_text("not a folder")
    for suffix in (".onnx", ".json", ".mp4"):
        (tmp_path / f"adir{suffix}").mkdir()
    model = create_model("dg4-light", 19)
    set_alpha(model, 0.0)
    save_checkpoint(
        tmp_path / "m.pt", model_state(model, "dg4-light", preprocess=Preprocess(32, 64))
    )

    def tripwire(*args, **kwargs):
        raise AssertionError("the work started before the output location was checked")

    for target in SENTINELS:
        monkeypatch.setattr(target, tripwire)
    return tmp_path


def _files(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


def _one_line(argv, root, capsys, out):
    before = _files(root)
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gradgroup: error:")]
    assert len(errors) == 1, err
    assert out in errors[0]
    assert _files(root) == before  # nothing made, not even a folder
    return errors[0]


@pytest.mark.parametrize("place", list(FILE_PLACES), ids=list(FILE_PLACES))
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_bad_output_file_fails_fast_in_one_line(places, tiny_onnx, capsys, command, place):
    argv, suffix = FILE_COMMANDS[command]
    out = FILE_PLACES[place].format(d=places, suffix=suffix)
    values = dict(out=out, ckpt=places / "m.pt", onnx=tiny_onnx)
    line = _one_line([a.format(**values) for a in argv], places, capsys, out)
    if place == "under /proc":
        assert "not writable" in line and "avi" not in line  # the folder, not the codec


@pytest.mark.parametrize("place", list(FOLDER_PLACES), ids=list(FOLDER_PLACES))
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_bad_output_folder_fails_fast_in_one_line(places, tiny_onnx, capsys, command, place):
    out = FOLDER_PLACES[place].format(d=places)
    argv = [a.format(out=out, onnx=tiny_onnx) for a in FOLDER_COMMANDS[command]]
    _one_line(argv, places, capsys, out)


def test_a_file_size_limit_mid_run_is_one_line(tiny_onnx, tmp_path, capsys):
    """``ulimit -f``: the report write fails with EFBIG after the benchmark; one line names it."""
    out = tmp_path / "b.json"
    argv = ["bench", str(tiny_onnx), "--runs", "1", "--warmup", "0", "--no-progress"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256, hard))  # Python ignores SIGXFSZ
    try:
        code = main([*argv, "--json-out", str(out)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"gradgroup: error: cannot write {out}: File too large"
    assert list(tmp_path.iterdir()) == []  # no partial report left


def test_an_unnamed_write_failure_is_one_line(tiny_onnx, tmp_path, capsys, monkeypatch):
    """An OSError no stage turned into a project error (a full disk) still gives one line."""
    from gradgroup.deploy import bench_report

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench_report, "format_markdown_report", full)
    argv = ["bench", str(tiny_onnx), "--runs", "1", "--warmup", "0", "--no-progress"]
    assert main([*argv, "--markdown", str(tmp_path / "b.md")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "gradgroup: error: writing an output failed: No space left on device "
        "(disk full or a file size limit?)"
    )
