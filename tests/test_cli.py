"""The dispatcher and the board-side floors: torch-free imports, help, errors, suggestions."""

import subprocess
import sys

import pytest

from gradgroup.cli import COMMANDS, main

TORCH_BLOCKED = "import sys; sys.modules['torch'] = None; "


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_deploy_and_calib_import_without_torch():
    proc = run_python(
        TORCH_BLOCKED
        + "import gradgroup.deploy, gradgroup.calib, pkgutil, importlib\n"
        + "import gradgroup.deploy as d, gradgroup.calib as c\n"
        + "for pkg in (d, c):\n"
        + "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        + "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        + "print('ok')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("command", ["bench", "demo", "check", "calib", "predict"])
def test_board_commands_help_without_torch(command):
    proc = run_python(
        TORCH_BLOCKED
        + f"from gradgroup.cli import main; raise SystemExit(main(['{command}', '--help']))"
    )
    assert proc.returncode == 0, proc.stderr
    assert f"gradgroup {command}" in proc.stdout


def test_every_command_module_has_configure_and_run():
    import importlib

    for name, (module, _) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            pytest.fail(f"{name}: {module} missing ({exc})")
        assert callable(mod.configure) and callable(mod.run), name


def test_unknown_command_suggests(capsys):
    assert main(["modles"]) == 2
    assert "did you mean 'models'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "pipeline" in capsys.readouterr().out


def test_models_json_lists_zoo(capsys):
    import json

    assert main(["models", "--size", "64x128", "--arch", "erfnet", "dg4-light", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["erfnet", "dg4-light"]
    assert rows[0]["params"] == 2_064_191 and rows[0]["macs"] > 10 * rows[1]["macs"] / 2


def test_models_table_and_bad_input(capsys):
    assert main(["models", "--size", "64x128", "--arch", "d", "dg4"]) == 0
    out = capsys.readouterr().out
    assert "GMACs" in out and "dg4" in out
    assert main(["models", "--size", "64by128"]) == 2
    assert "size '64by128' is not HxW" in capsys.readouterr().err
    assert main(["models", "--arch", "dg3x"]) == 2
