"""``--config FILE`` / ``--print-config`` for train, export, calib, bench and pipeline; run.json;
``--no-progress`` and ``-q`` as the one switch for every progress bar."""

import importlib
import io
import json
import sys
import types

import pytest

from gradgroup.cli import COMMANDS, main
from gradgroup.deploy.provenance import is_run_record, write_run_record


def printed_config(capsys, argv):
    assert main([*argv, "--print-config", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def no_work(monkeypatch):
    """--print-config must not start any work."""

    def tripwire(*args, **kwargs):
        raise AssertionError("--print-config started the work")

    for target in ("gradgroup.deploy.bench.benchmark", "gradgroup.pipeline.run_pipeline",
                   "gradgroup.cli_pipeline.run_pipeline"):  # fmt: skip
        monkeypatch.setattr(target, tripwire)


def test_bench_file_values_are_defaults_and_flags_win(tmp_path, capsys, no_work):
    cfg = write(tmp_path / "b.json", {
        "runs": 7, "fps-target": 60, "frame_size": [64, 128], "num_frames": 3, "spinning": False,
        "tidl_options": {"debug_level": 1}, "fail_over_budget": True, "estimate": "tda4vm",
    })  # fmt: skip
    got = printed_config(capsys, ["bench", "m.onnx", "--config", cfg, "--runs", "9"])
    assert got["runs"] == 9  # the command line wins
    assert (got["fps_target"], got["frame_size"], got["num_frames"]) == (60.0, [64, 128], 3)
    assert got["spinning"] is False and got["tidl_options"] == [["debug_level", "1"]]
    assert got["fail_over_budget"] is True and got["estimate"] == "tda4vm"
    # The printed config loads back to the same settings.
    again = printed_config(capsys, ["bench", "m.onnx", "--config", write(tmp_path / "p.json", got)])
    assert again == got


@pytest.mark.parametrize(
    "data, message",
    [
        ({"fps_targte": 60}, "unknown key 'fps_targte'; did you mean 'fps_target'?"),
        ({"zzz": 1}, "unknown key 'zzz' (see --print-config for the keys)"),
        ({"runs": "many"}, "runs: 'many' is not a valid int"),
        ({"runs": 2.5}, "runs: 2.5 is not an int"),
        ({"graph_optimization": "max"}, "'max' is not one of all, extended, basic, disabled"),
        ({"fail_over_budget": "yes"}, "fail_over_budget: 'yes' is not true or false"),
        ({"num_frames": "8"}, "num_frames: '8' is not like the default 8"),
        ([1, 2], "holds a list; it must map setting names to values"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, capsys, no_work, data, message):
    cfg = write(tmp_path / "bad.json", data)
    assert main(["bench", "m.onnx", "--config", cfg, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gradgroup: error: --config {cfg}") and "\n" not in err, err
    assert message in err


def test_unreadable_and_unknown_formats(tmp_path, capsys):
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    assert main(["bench", "m.onnx", "--config", str(bad)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["bench", "m.onnx", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "c.toml").write_text("")
    assert main(["bench", "m.onnx", "--config", str(tmp_path / "c.toml")]) == 2
    assert "give a .yaml, .yml or .json file" in capsys.readouterr().err


def test_yaml_needs_pyyaml_and_uses_it_when_there(tmp_path, capsys, monkeypatch, no_work):
    cfg = tmp_path / "b.yaml"
    cfg.write_text('{"runs": 4}')
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed
    assert main(["bench", "m.onnx", "--config", str(cfg), "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs PyYAML: pip install pyyaml" in err and "\n" not in err
    # Without PyYAML --print-config falls back to JSON (which YAML loaders read too).
    assert main(["bench", "m.onnx", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] is None
    fake = types.ModuleType("yaml")
    fake.YAMLError = ValueError
    fake.safe_load = json.loads
    fake.safe_dump = lambda data, **kw: "yaml:" + json.dumps(data)
    monkeypatch.setitem(sys.modules, "yaml", fake)
    assert main(["bench", "m.onnx", "--config", str(cfg), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("yaml:") and json.loads(out[5:])["runs"] == 4


def test_real_yaml_round_trip(tmp_path, capsys, no_work):
    pytest.importorskip("yaml")
    cfg = tmp_path / "b.yaml"
    cfg.write_text("runs: 5\nframe_size: [64, 128]\ntidl_options:\n  debug_level: 2\n")
    assert main(["bench", "m.onnx", "--config", str(cfg), "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "runs: 5" in printed  # YAML, not JSON
    (tmp_path / "p.yml").write_text(printed)
    again = printed_config(capsys, ["bench", "m.onnx", "--config", str(tmp_path / "p.yml")])
    assert again["runs"] == 5 and again["frame_size"] == [64, 128]
    assert again["tidl_options"] == [["debug_level", "2"]]


def test_train_round_trip_and_fields_without_a_flag(tmp_path, capsys):
    cfg = write(tmp_path / "t.json", {"arch": "d-light", "size": [64, 128], "weight_decay": 2e-4,
                                      "betas": [0.8, 0.99], "amp": False})  # fmt: skip
    got = printed_config(capsys, ["train", "--config", cfg, "--epochs", "3"])
    assert (got["arch"], got["size"], got["epochs"], got["amp"]) == ("d-light", [64, 128], 3, False)
    assert got["weight_decay"] == 2e-4 and got["betas"] == [0.8, 0.99]
    record = tmp_path / "run"
    write_run_record(record, got)  # a run folder's run.json loads as its config
    again = printed_config(capsys, ["train", "--config", str(record / "run.json")])
    assert again == got


def test_export_calib_pipeline_keys_are_field_names(tmp_path, capsys, no_work):
    cfg = write(tmp_path / "e.json", {"simplify": False, "opset": 13, "size": [64, 128]})
    got = printed_config(capsys, ["export", "c.pt", "--out", "m.onnx", "--config", cfg])
    assert (got["simplify"], got["opset"], got["size"]) == (False, 13, [64, 128])
    # max_drop is a fraction in the config (the flag takes points); renamed fields map back.
    keys = {"max_drop": 0.01, "nodes_to_exclude": ["n1"], "evaluate": True, "calib_frames": 8}
    cfg = write(tmp_path / "c.json", keys)
    got = printed_config(capsys, ["calib", "m.onnx", "--config", cfg])
    assert got["target"] == "cpu" and got["max_drop"] == pytest.approx(0.01)
    assert got["nodes_to_exclude"] == ["n1"] and got["calib_frames"] == 8
    cfg = write(tmp_path / "t.json", {"target": "tidl", "soc": "tda4vm", "calibration_frames": 5})
    got = printed_config(capsys, ["calib", "m.onnx", "--config", cfg])
    assert (got["target"], got["soc"], got["calibration_frames"]) == ("tidl", "tda4vm", 5)
    cfg = write(tmp_path / "p.json", {"max_drop": 0.05, "deploy_size": [64, 128], "seed": 3})
    got = printed_config(capsys, ["pipeline", "--config", cfg, "--seed", "4"])
    assert got["max_drop"] == pytest.approx(0.05) and got["deploy_size"] == [64, 128]
    assert got["seed"] == 4


def test_one_target_vocabulary_for_export_calib_and_the_providers(capsys, no_work):
    from gradgroup.deploy.session import PROVIDERS

    for target in PROVIDERS:  # every provider bench and demo take is a --target too
        got = printed_config(capsys, ["calib", "m.onnx", "--target", target])
        assert got["target"] == target
        got = printed_config(capsys, ["export", "c.pt", "--out", "m.onnx", "--target", target])
        assert got["target"] == target
    # "ort", the earlier name of the ONNX Runtime form, resolves to the provider's name.
    assert printed_config(capsys, ["calib", "m.onnx", "--target", "ort"])["target"] == "cpu"
    got = printed_config(capsys, ["export", "c.pt", "--out", "m.onnx", "--target", "ort"])
    assert got["target"] == "cpu"
    with pytest.raises(SystemExit) as exit_:
        main(["calib", "m.onnx", "--target", "gpu", "--print-config"])
    assert exit_.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "export", "calib", "bench", "pipeline"])
def test_config_keys_reach_the_flags(command):
    """Every renamed key names a real flag, and every flag named after a field is a key."""
    import argparse

    from gradgroup.deploy.cli_config import SPEC

    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).configure(parser)
    spec = parser.get_default(SPEC)
    keys = spec.fields()
    dests = {a.dest for a in parser._actions}
    assert set(spec.dests.values()) <= dests and set(spec.dests) <= set(keys)
    flagged = [k for k in keys if spec.dests.get(k, k) in dests]
    assert len(flagged) >= 8, flagged


def test_run_record(tmp_path):
    path = write_run_record(tmp_path / "out", {"lr": 1e-3})
    data = json.loads(path.read_text())
    assert is_run_record(data) and data["config"] == {"lr": 1e-3}
    assert data["command"] == sys.argv
    assert set(data["versions"]) == {"gradgroup", "torch", "onnxruntime", "onnx", "numpy", "python"}
    assert data["versions"]["numpy"] and data["versions"]["python"].count(".") == 2


PROGRESS_ARGV = {  # every command that shows progress bars, with its required arguments
    "train": [], "eval": ["m.onnx"], "export": ["c.pt", "--out", "m.onnx"], "calib": ["m.onnx"],
    "bench": ["m.onnx"], "demo": ["m.onnx"], "predict": ["m.onnx", "imgs", "--out", "p"],
    "pipeline": [],
}  # fmt: skip


@pytest.mark.parametrize("command", PROGRESS_ARGV)
def test_no_progress_and_quiet_hide_every_bar(command, monkeypatch):
    from tqdm import tqdm

    seen = []

    def fake_run(args):
        buf = io.StringIO()
        for _ in tqdm(range(3), file=buf, disable=False, mininterval=0):  # a library's own bar
            pass
        seen.append((args.progress, bool(buf.getvalue())))
        return 0

    monkeypatch.setattr(importlib.import_module(COMMANDS[command][0]), "run", fake_run)
    init = tqdm.__dict__["__init__"]
    for extra, expected in (([], (True, True)), (["--no-progress"], (False, False)),
                            (["-q"], (False, False))):  # fmt: skip
        assert main([command, *PROGRESS_ARGV[command], *extra]) == 0
        assert seen.pop() == expected, (command, extra)
        assert tqdm.__dict__["__init__"] is init  # restored after the command
