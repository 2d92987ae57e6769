"""Every flag's default is its config dataclass's default (issue 14.4): one source of truth.

A flag whose destination names a field of the command's config (or one of the few renamed ones
below) must default to that field's default, so ``gradgroup X`` and ``XConfig()`` never disagree.
"""

import argparse
import dataclasses
import importlib

import pytest

from gradgroup.cli import HelpFormatter
from gradgroup.deploy.preprocess import parse_size

# command: (CLI module, [(config module, config class)], positional arguments, {dest: field})
COMMANDS = {
    "train": ("gradgroup.train.cli_train", [("gradgroup.train.recipe", "TrainConfig")], [], {}),
    "export": (
        "gradgroup.export.cli_export",
        [("gradgroup.export.onnx_export", "ExportConfig")],
        ["ckpt.pt", "--out", "m.onnx"],
        {"rewrite": "rewrites"},
    ),
    "calib": (
        "gradgroup.calib.cli_calib",
        [("gradgroup.calib.quantize", "CalibConfig"), ("gradgroup.calib.tidl", "TidlConfig")],
        ["m.onnx"],
        {"exclude": "nodes_to_exclude"},
    ),
    "bench": (
        "gradgroup.deploy.cli_bench",
        [("gradgroup.deploy.bench", "BenchConfig")],
        ["m.onnx"],
        {"tidl_option": "tidl_options", "ov_option": "ov_options"},
    ),  # fmt: skip
    "demo": (
        "gradgroup.deploy.cli_demo",
        [("gradgroup.deploy.demo", "DemoConfig")],
        ["m.onnx"],
        {},
    ),  # fmt: skip
    "predict": (
        "gradgroup.deploy.cli_predict",
        [("gradgroup.deploy.predict", "PredictConfig")],
        ["m.onnx", "imgs", "--out", "pred"],
        {},
    ),
    "eval": (
        "gradgroup.train.cli_eval",
        [("gradgroup.train.evaluate", "EvalConfig")],
        ["m.onnx"],
        {},
    ),  # fmt: skip
    "pipeline": ("gradgroup.cli_pipeline", [("gradgroup.config", "PipelineConfig")], [], {}),
}
# Flags whose parsed form differs from the field's type only in representation.
NORMALIZE = {"size": parse_size, "deploy_size": parse_size}


# Flags typed in another unit than the field stores: --max-drop takes mIoU points, the configs
# hold fractions like every metric.
FLAG_SCALE = {"max_drop": 0.01}


def _normal(dest, value):
    if isinstance(value, str) and dest in NORMALIZE:
        return NORMALIZE[dest](value)
    return tuple(value) if isinstance(value, list) else value


def _flag_value(dest, value):
    if dest in FLAG_SCALE and isinstance(value, float):
        return pytest.approx(value * FLAG_SCALE[dest])
    return _normal(dest, value)


@pytest.mark.parametrize("command", COMMANDS)
def test_flag_defaults_are_the_config_defaults(command):
    module, configs, argv, renamed = COMMANDS[command]
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    importlib.import_module(module).configure(parser)
    args = vars(parser.parse_args(argv))
    compared = []
    for config_module, name in configs:
        cls = getattr(importlib.import_module(config_module), name)
        defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
        for dest, value in args.items():
            field = renamed.get(dest, dest)
            if field in defaults:
                assert _flag_value(dest, value) == _normal(dest, defaults[field]), (
                    f"gradgroup {command} --{dest.replace('_', '-')} defaults to {value!r}, "
                    f"{name}.{field} to {defaults[field]!r}"
                )
                compared.append(field)
    assert len(compared) >= 5, f"only {compared} matched a config field: is the mapping stale?"


def test_train_resume_keeps_saved_settings_against_the_config_defaults(tmp_path):
    """--resume replaces only flags left at their default by the run's own settings."""
    import json

    from gradgroup.train import cli_train

    (tmp_path / "config.json").write_text(json.dumps({"lr": 1e-3, "epochs": 3, "arch": "d"}))
    parser = argparse.ArgumentParser()
    cli_train.configure(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--resume", "--epochs", "7"])
    cfg = cli_train.config_from_args(args)
    assert (cfg.lr, cfg.arch, cfg.epochs) == (1e-3, "d", 7)
