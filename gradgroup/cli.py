"""The ``gradgroup`` command: one entry point, subcommands imported lazily.

Each subcommand is one module exposing ``configure(parser)`` (adds its flags) and
``run(args) -> int`` (calls the stage's API and returns the exit code); one that takes
``--config`` also has ``resolved_config(args) -> dict`` for ``--print-config``. Only the chosen
module is imported, so ``gradgroup bench --help`` works on a board without torch. The shared
vocabulary is handled here: ``--config``/``--print-config``, and ``--no-progress`` (or ``-q``)
turning off every progress bar the command would show.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import logging
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator

from gradgroup import __version__

# name -> (module, one-line help). The order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("gradgroup.train.cli_models", "list the architectures with parameters and MACs"),
    "train": ("gradgroup.train.cli_train", "train a model with gradual grouping"),
    "eval": ("gradgroup.train.cli_eval", "evaluate a checkpoint or ONNX model (mIoU)"),
    "export": (
        "gradgroup.export.cli_export",
        "export a checkpoint to ONNX with true grouped convs",
    ),
    "check": ("gradgroup.deploy.cli_check", "list what TIDL would not run on the accelerator"),
    "calib": ("gradgroup.calib.cli_calib", "quantize an ONNX model to int8 (ORT or TIDL)"),
    "bench": ("gradgroup.deploy.cli_bench", "latency and energy benchmark against the fps budget"),
    "demo": ("gradgroup.deploy.cli_demo", "live segmentation from a camera, video or folder"),
    "predict": (
        "gradgroup.deploy.cli_predict",
        "segment images, a folder or a video into PNG files (class ids, labelIds, colours)",
    ),
    "weights": ("gradgroup.train.cli_weights", "the shipped scene-pretrained weights"),
    "pipeline": ("gradgroup.cli_pipeline", "train, export, calibrate, bench and demo in one run"),
}

EPILOG = """examples:
  gradgroup models --size 512x1024
  gradgroup train --arch dg4-light --schedule gradual --out runs/dg4
  gradgroup export runs/dg4/best.pt --out dg4.onnx --target tidl
  gradgroup calib dg4.onnx --out dg4.int8.onnx --max-drop 1.0
  gradgroup bench dg4.onnx dg4.int8.onnx --fps-target 30
  gradgroup demo dg4.int8.onnx --source synthetic
  gradgroup predict dg4.int8.onnx leftImg8bit/val --out pred --format labelid,color
  gradgroup pipeline --out runs/pipeline
"""

log = logging.getLogger("gradgroup")


def _base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradgroup",
        description="Gradual grouping: efficient segmentation from training to TI SoCs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gradgroup {__version__}")
    return parser


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    group.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


def _unknown(name: str) -> int:
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    print(
        f"gradgroup: error: unknown command {name!r}{hint} (see gradgroup --help)", file=sys.stderr
    )
    return 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every subcommand's help: defaults shown (unless the text already says), examples as written.

    A plain switch (``--json``, ``--no-eval``) shows none: its default is the value of the setting
    it turns off or on, which reads as the opposite ("--no-eval (default: True)"). Nor do a
    required option, a None or an empty default: their help text says what happens instead.
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Never break inside an option name or a hyphenated word ("--no-cross-" / "cap").
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        empty = action.default is None or action.default in ("", [], ())
        if "default" in text or empty or switch or action.required:
            return text
        if isinstance(action, argparse.BooleanOptionalAction) and isinstance(action.default, bool):
            on, off = action.option_strings[:2]  # --amp, --no-amp
            return f"{text} (default: {on if action.default else off})"
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    import gradgroup.train  # noqa: F401  (OpenMP's wait policy, set before torch loads)

    argv = sys.argv[1:] if argv is None else argv
    parser = _base_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    name = next((a for a in argv if not a.startswith("-")), None)
    if name is None:
        parser.parse_args(argv)  # handles --help / --version
        parser.print_help()
        return 2
    if name not in COMMANDS:
        return _unknown(name)

    from gradgroup.deploy.errors import GradgroupError

    module_name, text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("gradgroup"):
            raise
        print(
            f"gradgroup: error: {name!r} needs the package {exc.name!r}, which is not installed "
            "(pip install 'gradgroup[train,export]')",
            file=sys.stderr,
        )
        return 2
    cmd_parser = argparse.ArgumentParser(
        prog=f"gradgroup {name}",
        description=text,
        formatter_class=HelpFormatter,
    )
    _add_verbosity(cmd_parser)
    module.configure(cmd_parser)
    rest = list(argv)
    rest.remove(name)
    try:
        from gradgroup.deploy.cli_config import format_config, parse_with_config

        args = parse_with_config(cmd_parser, rest)  # --config FILE: its values as the defaults
        _setup_logging(args)
        if args.quiet and hasattr(args, "progress"):
            args.progress = False  # -q: warnings and errors only, no bars either
        if getattr(args, "print_config", False):
            as_json = getattr(args, "json", False)
            print(format_config(module.resolved_config(args), as_json=as_json))
            return 0
        quiet = getattr(args, "progress", True) is False
        with _sigterm_as_interrupt(), _no_progress_bars() if quiet else contextlib.nullcontext():
            return int(module.run(args) or 0)
    except GradgroupError as exc:
        print(f"gradgroup: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gradgroup: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except OSError as exc:  # a write that failed mid-run (disk full, ulimit -f): one line too
        print(f"gradgroup: error: {_os_error(exc)}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Every tqdm bar disabled for the block, whichever module opens it (``--no-progress``)."""
    from tqdm import tqdm

    saved = tqdm.__dict__["__init__"]  # restored as it was (tqdm wraps it in a partialmethod)
    init = tqdm.__init__

    def disabled(self: tqdm, *args: object, **kwargs: object) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    tqdm.__init__ = disabled  # subclasses (tqdm.auto, tqdm.contrib) call it too
    try:
        yield
    finally:
        tqdm.__init__ = saved


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager's stop) takes the Ctrl-C path, so cleanups run."""
    if threading.current_thread() is not threading.main_thread():  # signals are main-thread only
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error(exc: OSError) -> str:
    """One line for an OSError no stage turned into a GradgroupError: the path and the reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    if paths:
        return f"{paths}: {reason}"
    if exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
        return f"writing an output failed: {reason} (disk full or a file size limit?)"
    return reason
