"""Compile a model for TI's C7x/MMA with ``TIDLCompilationProvider`` (edgeai-tidl-tools).

Option names are TI's (edgeai-tidl-tools ``examples/osrt_python/README.md``): ``tidl_tools_path``,
``artifacts_folder``, ``tensor_bits``, ``accuracy_level``, ``debug_level``,
``deny_list:layer_type``, ``deny_list:layer_name`` (plain ``deny_list`` is TI's legacy spelling of
the first), ``advanced_options:calibration_frames``, ``advanced_options:calibration_iterations``,
``advanced_options:quantization_scale_type`` and ``advanced_options:prequantized_model``; any other
passes through :attr:`TidlConfig.options` (``--tidl-option KEY=VALUE``).
Compiling = one ORT session with the TIDL compilation provider and one ``run()`` per calibration
frame. The result is a package in TI's layout (:mod:`.tidl_package`): ``artifacts/``,
``model/<name>.onnx`` and ``param.yaml``. It needs TI's ONNX Runtime build and tools, which pip's
onnxruntime is not; option building and packaging are tested here with a fake provider, the
compile itself only runs where TI's tools are installed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gradgroup.deploy.errors import (
    GradgroupError,
    InputError,
    MissingDependencyError,
    RunError,
    first_line,
)
from gradgroup.deploy.session import TIDL_ARTIFACTS_DIR, TIDL_MODEL_DIR, TIDL_PARAM_YAML

log = logging.getLogger(__name__)

# advanced_options:quantization_scale_type per SoC. TDA4VM (J721E) supports symmetric
# power-of-two scales only (1); the newer SoCs support asymmetric per-channel (4), which TI
# recommends where available (edgeai-benchmark constants.py TARGET_DEVICE_SETTINGS_PRESETS: 4
# for AM62A, AM67A, AM68A, AM69A).
SCALE_TYPE_P2 = 1
SCALE_TYPE_ASYM_PER_CHANNEL = 4
SOCS: dict[str, int] = {
    "tda4vm": SCALE_TYPE_P2,
    "am68a": SCALE_TYPE_ASYM_PER_CHANNEL,
    "am69a": SCALE_TYPE_ASYM_PER_CHANNEL,
    "am62a": SCALE_TYPE_ASYM_PER_CHANNEL,
    "am67a": SCALE_TYPE_ASYM_PER_CHANNEL,
}
# TI's other names for the same SoCs, as edgeai-tidl-tools' setup.sh accepts them in $SOC.
SOC_ALIASES = {"am68pa": "tda4vm", "j721e": "tda4vm", "j721s2": "am68a", "j784s4": "am69a",
               "j722s": "am67a"}  # fmt: skip
DEFAULT_SOC = "am68a"
# TI documents 50 bias-calibration iterations as the default (edgeai-tidl-tools
# examples/osrt_python/README.md, advanced options).
DEFAULT_CALIBRATION_ITERATIONS = 50
# Options gradgroup sets itself from its own flags: --tidl-option may not override them.
MANAGED_OPTIONS = {
    "tidl_tools_path": "--tidl-tools",
    "artifacts_folder": "--out",
    "advanced_options:calibration_frames": "--calib-frames",
}
TIDL_SETUP_HINT = (
    "clone github.com/TexasInstruments/edgeai-tidl-tools, run its setup.sh for your SoC "
    "(it installs TI's onnxruntime-tidl wheel and tidl_tools) and pass --tidl-tools PATH/tidl_tools"
)


def normalize_soc(name: str) -> str:
    """A SoC name as gradgroup spells it: lower-cased, TI's aliases resolved (unchecked)."""
    name = name.strip().lower()
    return SOC_ALIASES.get(name, name)


def default_soc() -> str:
    """``$SOC`` when set (as TI's examples read it), else ``am68a``; checked by TidlConfig."""
    return normalize_soc(os.environ.get("SOC", "")) or DEFAULT_SOC


@dataclass(frozen=True)
class TidlConfig:
    """TIDL compilation settings; maps 1:1 onto ``gradgroup calib --target tidl`` flags.

    Attributes:
        tidl_tools: path to TI's ``tidl_tools`` folder (None: ``$TIDL_TOOLS_PATH``).
        soc: ``tda4vm``, ``am62a``, ``am67a``, ``am68a`` or ``am69a`` (TI's ``am68pa``/``j721e``,
            ``j721s2``, ``j784s4``, ``j722s`` are accepted); default ``$SOC``, else ``am68a``.
            Picks the quantization scale type.
        set_path: calibration set (.npz); None uses ``<model stem>.calib.npz`` or scenes.
        tensor_bits: 8 or 16.
        accuracy_level: 0 simple min/max calibration, 1 advanced bias calibration (TI default).
        calibration_frames: frames to calibrate on (None: every frame of the set).
        calibration_iterations: bias-calibration iterations (TI's documented default, 50).
        debug_level: TIDL's debug output level (0 quiet).
        deny_list_type: op types kept off the accelerator (``deny_list:layer_type``, e.g.
            ``("MaxPool",)``).
        deny_list_name: node names kept off the accelerator (``deny_list:layer_name``; TI also
            matches a node's first output name).
        options: any further TI option, by TI's name, overriding the above (not those in
            :data:`MANAGED_OPTIONS`).
    """

    tidl_tools: str | None = None
    soc: str = field(default_factory=default_soc)
    set_path: str | None = None
    tensor_bits: int = 8
    accuracy_level: int = 1
    calibration_frames: int | None = None
    calibration_iterations: int = DEFAULT_CALIBRATION_ITERATIONS
    debug_level: int = 0
    deny_list_type: tuple[str, ...] = ()
    deny_list_name: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        soc = normalize_soc(self.soc)
        if soc not in SOCS:
            env = normalize_soc(os.environ.get("SOC", ""))
            source = " (from $SOC)" if env and env == soc else ""
            raise InputError(
                f"--soc {self.soc!r}{source} is not one of {', '.join(SOCS)} (or TI's "
                f"{', '.join(SOC_ALIASES)})"
            )
        object.__setattr__(self, "soc", soc)  # frozen: normalized once, at construction
        if self.tensor_bits not in (8, 16):
            raise InputError(f"--tensor-bits {self.tensor_bits} must be 8 or 16")
        if self.accuracy_level not in (0, 1, 9):
            raise InputError(f"--accuracy-level {self.accuracy_level} must be 0, 1 or 9")
        if self.calibration_frames is not None and self.calibration_frames < 1:
            raise InputError(f"--calibration-frames {self.calibration_frames} must be >= 1")
        if self.calibration_iterations < 1:
            raise InputError(f"--calibration-iterations {self.calibration_iterations} must be >= 1")
        for key in self.options:
            if key in MANAGED_OPTIONS:
                raise InputError(
                    f"--tidl-option {key} is set by gradgroup; use {MANAGED_OPTIONS[key]} instead"
                )


def tidl_options(
    cfg: TidlConfig, tools: str | Path, artifacts: str | Path, frames: int, prequantized: bool
) -> dict[str, Any]:
    """The provider-options dict for ``TIDLCompilationProvider``, with TI's option names.

    Args:
        cfg: settings.
        tools: the ``tidl_tools`` folder.
        artifacts: folder the compiler writes its artifacts into.
        frames: calibration frames that will be run.
        prequantized: the model is QDQ: TIDL reads its scales instead of calibrating.
    """
    options: dict[str, Any] = {
        "tidl_tools_path": str(tools),
        "artifacts_folder": str(artifacts),
        "tensor_bits": cfg.tensor_bits,
        "accuracy_level": cfg.accuracy_level,
        "debug_level": cfg.debug_level,
        "advanced_options:calibration_frames": frames,
        "advanced_options:calibration_iterations": cfg.calibration_iterations,
        "advanced_options:quantization_scale_type": SOCS[cfg.soc],
    }
    if cfg.deny_list_type:
        options["deny_list:layer_type"] = ", ".join(cfg.deny_list_type)
    if cfg.deny_list_name:
        options["deny_list:layer_name"] = ", ".join(cfg.deny_list_name)
    if prequantized:
        options["advanced_options:prequantized_model"] = 1
    options.update(cfg.options)
    return options


def find_tidl_tools(path: str | None) -> Path:
    """Resolve and check the ``tidl_tools`` folder (``--tidl-tools`` or ``$TIDL_TOOLS_PATH``)."""
    path = path or os.environ.get("TIDL_TOOLS_PATH")
    if not path:
        raise MissingDependencyError(
            f"TIDL tools not given (--tidl-tools or $TIDL_TOOLS_PATH); {TIDL_SETUP_HINT}"
        )
    tools = Path(path)
    if not tools.is_dir() or not any(tools.iterdir()):
        raise MissingDependencyError(
            f"TIDL tools folder {tools} does not exist or is empty; {TIDL_SETUP_HINT}"
        )
    return tools


def check_tidl_runtime() -> None:
    """Raise MissingDependencyError unless this ONNX Runtime has TI's compilation provider."""
    import onnxruntime as ort

    if "TIDLCompilationProvider" not in ort.get_available_providers():
        raise MissingDependencyError(
            f"onnxruntime {ort.__version__} here has no TIDLCompilationProvider (pip's build never "
            f"does); {TIDL_SETUP_HINT}"
        )


@dataclass
class TidlResult:
    """A finished TIDL compilation, packaged in TI's layout.

    Attributes:
        package: the package folder (``--out``).
        artifacts, model, param_yaml: its ``artifacts/``, ``model/<name>.onnx`` and
            ``param.yaml``.
        options: the compilation options as given to TI's provider (artifacts_folder final).
    """

    package: str
    artifacts: str
    model: str
    param_yaml: str
    soc: str
    seconds: float
    frames: int
    prequantized: bool
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        kind = "pre-quantized QDQ" if self.prequantized else f"{self.frames} calibration frames"
        return (
            f"calib success {self.seconds:.1f} s, TIDL package for {self.soc} in {self.package} "
            f"({TIDL_ARTIFACTS_DIR}/, {TIDL_MODEL_DIR}/{Path(self.model).name}, "
            f"{TIDL_PARAM_YAML}; {kind})"
        )


def compile_tidl(model_path: str | Path, out: str | Path, cfg: TidlConfig) -> TidlResult:
    """Compile an fp32 or QDQ ONNX model for ``cfg.soc`` into a package folder ``out``.

    ``out`` gets TI's layout: ``artifacts/`` (what the compiler wrote), ``model/<name>.onnx``
    and ``param.yaml`` (:mod:`.tidl_package`). Everything is written into a staging folder next
    to ``out`` and moved into place only when the compile succeeded.

    Raises:
        MissingDependencyError: TI's ONNX Runtime build or tools are absent.
        InputError: unreadable model, unusable calibration set, ``out`` is a file or a folder of
            other files.
        RunError: the compile failed or wrote no artifacts.
    """
    from gradgroup.deploy.graph.core import load_onnx
    from gradgroup.deploy.metadata import read_meta
    from gradgroup.deploy.runtime import check_segmenter
    from gradgroup.deploy.session import tidl_compile_session

    from .graph import quantized_ops
    from .reader import CalibSetReader, resolve_calibset
    from .tidl_package import check_package_out, replace_folder, write_package

    t0 = time.perf_counter()
    tools = find_tidl_tools(cfg.tidl_tools)
    check_tidl_runtime()
    model_path, out = Path(model_path), Path(out)
    check_package_out(out)
    model = load_onnx(model_path)
    check_segmenter(model, model_path)
    meta = read_meta(model)
    prequantized = bool(quantized_ops(model))
    calib, source = resolve_calibset(model_path, meta, cfg.set_path)
    reader = CalibSetReader(
        calib, model.graph.input[0].name, meta.input_dtype, cfg.calibration_frames
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    compiled = staging / TIDL_ARTIFACTS_DIR
    compiled.mkdir()
    options = tidl_options(cfg, tools, compiled, len(reader), prequantized)
    os.environ.setdefault("TIDL_TOOLS_PATH", str(tools))
    log.info(
        "compiling %s for %s with %d frames from %s", model_path.name, cfg.soc, len(reader), source
    )
    final = {**options, "artifacts_folder": str(out / TIDL_ARTIFACTS_DIR)}
    try:
        session = tidl_compile_session(model_path, options)
        for feed in iter(reader.get_next, None):  # TIDL calibrates on these runs
            session.run(None, feed)
        del session  # artifacts are flushed when the session is released
        if not any(compiled.iterdir()):
            raise RunError(
                f"TIDL compilation of {model_path.name} wrote no artifacts; rerun with "
                "--debug-level 1 to see TI's log"
            )
        write_package(staging, model_path, model, meta, cfg.soc, final)
        replace_folder(staging, out)
    except BaseException as exc:  # no half-written package, whatever stopped the compile
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(exc, Exception) or isinstance(exc, GradgroupError):
            raise
        raise RunError(f"TIDL compilation failed: {first_line(exc)}") from None
    return TidlResult(
        package=str(out),
        artifacts=str(out / TIDL_ARTIFACTS_DIR),
        model=str(out / TIDL_MODEL_DIR / model_path.name),
        param_yaml=str(out / TIDL_PARAM_YAML),
        soc=cfg.soc,
        seconds=round(time.perf_counter() - t0, 3),
        frames=len(reader),
        prequantized=prequantized,
        options=final,
    )
