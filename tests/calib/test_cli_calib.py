"""``gradgroup calib`` via the real dispatcher: exit codes, one-line errors, JSON, torch-free."""

import json
import subprocess
import sys

import pytest

from gradgroup.cli import main


def test_cli_quantizes_and_prints_one_result_line(model_dir, tmp_path, capsys):
    out = tmp_path / "m.int8.onnx"
    code = main(
        [
            "calib",
            str(model_dir / "tiny.onnx"),
            "--out",
            str(out),
            "--eval-frames",
            "2",
            "--sqnr-frames",
            "1",
            "--method",
            "percentile",
            "-q",
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0 and out.is_file() and out.with_suffix(".json").is_file()
    assert stdout.strip().splitlines()[-1].startswith("calib success")
    assert "agreement with fp32" in stdout and "worst tensors" in stdout
    assert "int8 kernels" in stdout


def test_cli_json(model_dir, tmp_path, capsys):
    out = tmp_path / "m.int8.onnx"
    code = main(
        [
            "calib",
            str(model_dir / "tiny.onnx"),
            "--out",
            str(out),
            "--no-eval",
            "--json",
            "--method",  # ORT's histogram calibrators print; stdout must stay pure JSON
            "percentile",
            "--no-per-channel",
            "--activation-type",
            "s8",
            "-q",
        ]
    )
    result = json.loads(capsys.readouterr().out, parse_constant=_not_json)  # strict JSON
    assert code == 0 and result["path"] == str(out) and result["accuracy"] is None
    assert (
        result["settings"]["activation_type"] == "s8" and result["settings"]["per_channel"] is False
    )
    assert result["settings"]["method"] == "percentile"


def test_cli_bad_input_exits_2_with_one_line(model_dir, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    code = main(["calib", str(broken), "--out", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("gradgroup: error: model") and "\n" not in err
    assert not (tmp_path / "o.onnx").exists()


def test_cli_tidl_without_tis_runtime_exits_2(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIDL_TOOLS_PATH", raising=False)
    code = main(
        [
            "calib",
            str(model_dir / "tiny.onnx"),
            "--target",
            "tidl",
            "--soc",
            "tda4vm",
            "--out",
            str(tmp_path / "art"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "TIDL tools not given" in err and "\n" not in err
    assert not (tmp_path / "art").exists()


def test_calib_imports_and_helps_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import gradgroup.calib.quantize, gradgroup.calib.reader, gradgroup.calib.accuracy\n"
        "import gradgroup.calib.tidl, gradgroup.calib.graph, gradgroup.calib.cli_calib\n"
        "from gradgroup.cli import main\n"
        "try:\n    main(['calib', '--help'])\nexcept SystemExit as e:\n    sys.exit(e.code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--max-drop" in proc.stdout and "--power-of-2" in proc.stdout


def test_quantize_runs_without_torch_or_sympy(model_dir, tmp_path):
    """A board-side install has neither (sympy comes with torch): calibration must still run."""
    out = tmp_path / "m.int8.onnx"
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['sympy'] = None\n"
        "from gradgroup.calib.quantize import CalibConfig, quantize\n"
        f"r = quantize({str(model_dir / 'tiny.onnx')!r}, {str(out)!r}, "
        "CalibConfig(eval_frames=2, sqnr_frames=1))\n"
        "print(r.accuracy.report.agreement)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) > 0.5 and out.is_file()


def test_sigterm_removes_the_working_folder(model_dir, tmp_path):
    """A service manager's stop (SIGTERM) mid-calibration cleans up as Ctrl-C does."""
    out = tmp_path / "m.int8.onnx"
    code = (
        "import os, signal, time\n"
        "import gradgroup.calib.quantize as q\n"
        "def stopped(*args):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(60)\n"
        "q.calibrate_ranges = stopped\n"
        "from gradgroup.cli import main\n"
        f"raise SystemExit(main(['calib', {str(model_dir / 'tiny.onnx')!r}, '--out', {str(out)!r},"
        " '--no-eval', '-q']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "gradgroup: interrupted" in proc.stderr
    assert not list(tmp_path.iterdir())  # no .calib-* folder, no model


def test_help_shows_no_default_for_switches(capsys):
    with pytest.raises(SystemExit):
        main(["calib", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "--no-eval skip the fp32/int8 evaluation" in flat
    assert "evaluation (default" not in flat and "as JSON (default" not in flat
    assert "(default: percentile)" in flat and "weight scales (default: --per-channel)" in flat


def _not_json(token):
    raise ValueError(f"{token} is not JSON (JavaScript's JSON.parse rejects it)")
