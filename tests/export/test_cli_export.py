"""``gradgroup export``: flags map onto ExportConfig, one result line, errors without tracebacks."""

import json

import onnx

from gradgroup.cli import main


def test_export_cli_result_line_and_files(ckpt_factory, tmp_path, capsys):
    ckpt, _ = ckpt_factory("dg2s-light")
    out = tmp_path / "m.onnx"
    flags = "--calib-frames 2 --verify-frames 1 --target tidl --output argmax --opset 13"
    assert main(["export", str(ckpt), "--out", str(out), *flags.split()]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("export success") and "saved as m.onnx" in lines[-1]
    assert lines[-1].endswith("TIDL: 0 findings, calib 2 frames")
    assert any(line.startswith("raw") and line.endswith("ok") for line in lines)
    assert (
        out.is_file()
        and out.with_suffix(".calib.npz").is_file()
        and out.with_suffix(".export.json").is_file()
    )
    graph = onnx.load(out)
    assert {o.domain: o.version for o in graph.opset_import}[""] == 13


def test_export_cli_json_and_no_calibration(ckpt_factory, tmp_path, capsys):
    ckpt, _ = ckpt_factory("dg2")
    out = tmp_path / "m.onnx"
    flags = "--calib-data none --size 64x32 --shuffle reshape --no-simplify --verify-frames 1"
    flags += " --rewrite depthwise_to_square --json"
    assert main(["export", str(ckpt), "--out", str(out), *flags.split()]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calib_path"] is None and data["config"]["simplify"] is False
    assert data["config"]["size"] == [64, 32] and data["config"]["shuffle"] == "reshape"
    assert not out.with_suffix(".calib.npz").exists()
    assert data["rewrites"]["depthwise_to_square"] == 52  # 13 blocks x 4 factorized depthwise
    assert all(c["passed"] for c in data["checks"])


def test_export_cli_errors(ckpt_factory, tmp_path, capsys):
    ckpt, _ = ckpt_factory("dg2", alpha=0.5)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--calib-data", "none"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gradgroup: error: layer encoder.") and "--dense" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--out", str(out), "--calib-data", "images:/no/dir"]) == 2
    assert main(["export", str(ckpt), "--out", str(out), "--size", "big"]) == 2
    assert list(tmp_path.glob("m.*")) == []
