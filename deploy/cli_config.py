"""Flags and config dataclasses, one vocabulary: parsed flags -> a config, a config file -> the
flags' defaults, the resolved config -> YAML or JSON.

Every command's flags are named after its config's fields (a flag's dest is the field's name, or
one of a short ``dests`` list), so a file of field names sets any of them: ``--config FILE``
(``.yaml``/``.yml`` with PyYAML, or ``.json``) makes the file's values the defaults, flags given
on the command line still win, and ``--print-config`` prints what the command would run with.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError, MissingDependencyError, first_line
from .fileio import to_json

T = TypeVar("T")
SPEC = "_config_spec"  # the parser default that carries a command's ConfigSpec
YAML_HOWTO = "pip install pyyaml"


def config_from_args(
    cls: type[T], args: argparse.Namespace, renamed: Mapping[str, str] | None = None, **overrides
) -> T:
    """``cls(...)`` from every parsed flag whose dest (or ``renamed[dest]``) is a field of ``cls``.

    Repeatable flags (lists) become tuples, as the frozen configs store them; ``overrides`` are
    values the command computes itself (a parsed size, an inverted switch) and win.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for dest, value in vars(args).items():
        field_name = (renamed or {}).get(dest, dest)
        if field_name in names:
            values[field_name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    return cls(**values)


@dataclass(frozen=True)
class ConfigSpec:
    """What a command's config file may hold.

    Attributes:
        classes: the config dataclasses, as classes or ``"module:Class"`` (imported only when a
            file is read, so ``--help`` stays instant).
        settings: flag dests that are no config field but belong in a config (``target``).
        dests: key -> flag dest where they differ (``nodes_to_exclude`` -> ``exclude``).
        scale: key -> factor from the field's unit to the flag's (``max_drop``: fraction ->
            points, 100).
    """

    classes: tuple[type | str, ...]
    settings: tuple[str, ...] = ()
    dests: Mapping[str, str] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """Accepted key -> the field's default (``MISSING`` for settings and required fields)."""
        out: dict[str, Any] = {}
        for ref in self.classes:
            if isinstance(ref, str):
                module, _, name = ref.partition(":")
                ref = getattr(importlib.import_module(module), name)
            for f in dataclasses.fields(ref):
                factory = f.default_factory
                out.setdefault(f.name, factory() if factory is not MISSING else f.default)
        for name in self.settings:
            out.setdefault(name, MISSING)
        return out


def add_config_flags(
    parser: argparse.ArgumentParser,
    *classes: type | str,
    settings: Sequence[str] = (),
    dests: Mapping[str, str] | None = None,
    scale: Mapping[str, float] | None = None,
) -> None:
    """Add ``--config`` and ``--print-config``; their keys are ``classes``' fields + ``settings``.

    Args:
        classes: the config dataclasses the command's flags map onto (or ``"module:Class"``).
        settings: flag dests that are no config field but belong in a config (``target``).
        dests: key -> flag dest where they differ.
        scale: key -> field-to-flag unit factor.
    """
    spec = ConfigSpec(tuple(classes), tuple(settings), dict(dests or {}), dict(scale or {}))
    group = parser.add_argument_group("config file")
    group.add_argument(
        "--config",
        metavar="FILE",
        help="YAML (.yaml/.yml, needs PyYAML) or JSON file of settings by config field name, "
        "e.g. a run's run.json or --print-config's output; its values become the defaults and "
        "flags given here still win (default: none)",
    )
    group.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings (YAML, or JSON with --json or without PyYAML) and exit "
        "without doing any work",
    )
    parser.set_defaults(**{SPEC: spec})


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; with ``--config FILE``, parse again with the file's values as defaults.

    Two passes let argparse find ``--config`` in every spelling it accepts (``--config=F``,
    abbreviations) and keep the command line's own flags above the file.

    Raises:
        InputError: an unreadable file, an unknown key (named with its close matches), a value
            of the wrong type or outside the flag's choices.
        MissingDependencyError: a YAML file without PyYAML.
    """
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    spec = parser.get_default(SPEC)
    if not path or not isinstance(spec, ConfigSpec):
        return args
    data = load_config_file(path)
    known = spec.fields()
    actions = {a.dest: a for a in parser._actions}  # argparse keeps no public index by dest
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
            hint = (
                f"; did you mean {' or '.join(map(repr, close))}?"
                if close
                else " (see --print-config for the keys)"
            )
            raise InputError(f"--config {path}: unknown key {key!r}{hint}")
        dest = spec.dests.get(name, name)
        where = f"--config {path}: {key}"
        if dest in actions:
            defaults[dest] = _flag_value(actions[dest], value, where, spec.scale.get(name))
        else:
            default = known[name]
            defaults[dest] = _field_value(value, None if default is MISSING else default, where)
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a ``.yaml``/``.yml``/``.json`` file (a ``run.json``: its ``config``)."""
    from .provenance import is_run_record

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise InputError(f"--config {path}: give a .yaml, .yml or .json file")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"--config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config {path} is not readable ({first_line(exc)})") from None
    if suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise InputError(f"--config {path} is not valid JSON ({first_line(exc)})") from None
    else:
        yaml = _yaml(f"--config {path} is YAML, which needs PyYAML: {YAML_HOWTO} (or give JSON)")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"--config {path} is not valid YAML ({first_line(exc)})") from None
    if data is None:
        data = {}
    if is_run_record(data):
        data = data["config"]
    if not isinstance(data, dict):
        raise InputError(
            f"--config {path} holds a {type(data).__name__}; it must map setting names to values"
        )
    return data


def format_config(config: Mapping[str, Any], as_json: bool = False) -> str:
    """``config`` as YAML (when PyYAML is importable and not ``as_json``) or JSON; both load back
    with ``--config``."""
    data = json.loads(to_json(dict(config)))  # tuples -> lists, non-finite floats -> null
    if not as_json:
        try:
            yaml = _yaml("")
        except MissingDependencyError:
            pass
        else:
            return yaml.safe_dump(data, sort_keys=False, default_flow_style=None).rstrip()
    return json.dumps(data, indent=2)


def _yaml(message: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise MissingDependencyError(message) from None
    return yaml


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", "value").lstrip("_").replace("_", " ")


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """One value from a file -> what argparse would have parsed from the command line."""
    kind = action.type
    if isinstance(value, (bool, dict, list)):
        raise InputError(f"{where}: {value!r} is not a {_type_name(kind or str)}")
    if kind is None or kind is str:
        return str(value)
    if kind is int and not isinstance(value, int) and not isinstance(value, str):
        raise InputError(f"{where}: {value!r} is not an int")
    if kind is float and isinstance(value, int | float):
        return float(value)
    try:
        return kind(str(value) if not isinstance(value, str) else value)
    except (ValueError, TypeError, InputError):
        raise InputError(f"{where}: {value!r} is not a valid {_type_name(kind)}") from None


def _flag_value(action: argparse.Action, value: Any, where: str, scale: float | None) -> Any:
    """A file's value for the flag ``action`` in the form its parsed dest holds."""
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):  # a switch
        if value is None and action.default is None:
            return None
        if not isinstance(value, bool):
            raise InputError(f"{where}: {value!r} is not true or false")
        return value
    if value is None:
        if action.default is None or action.required:
            return None
        raise InputError(f"{where}: null is not allowed here (default {action.default!r})")
    repeated = action.nargs in ("+", "*") or isinstance(action.default, list)
    if repeated:
        if isinstance(value, Mapping):  # KEY=VALUE options written as a mapping
            items: list[Any] = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            items = [
                f"{v[0]}={v[1]}" if isinstance(v, (list, tuple)) and len(v) == 2 else v
                for v in value
            ]
        else:
            items = [value]
        out = [_convert(action, v, where) for v in items]
        bad = [v for v in out if action.choices is not None and v not in action.choices]
    else:
        if (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and action.type in (None, str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            value = f"{value[0]}x{value[1]}"  # a size field, (H, W), for an HxW flag
        elif scale and isinstance(value, int | float) and not isinstance(value, bool):
            value = value * scale
        out = _convert(action, value, where)
        bad = [out] if action.choices is not None and out not in action.choices else []
    if bad:
        choices = ", ".join(map(str, action.choices))
        raise InputError(f"{where}: {bad[0]!r} is not one of {choices}")
    return out


def _field_value(value: Any, default: Any, where: str) -> Any:
    """A file's value for a field no flag sets, type-checked against the field's default."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(value, int):
            ok = False
    elif isinstance(default, tuple | list):
        ok = isinstance(value, list | tuple)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise InputError(f"{where}: {value!r} is not like the default {default!r}")
    return value
