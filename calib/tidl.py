"""Compile a model for TI's C7x/MMA with ``TIDLCompilationProvider`` (edgeai-tidl-tools).

Option names are TI's (edgeai-tidl-tools docs): ``tidl_tools_path``, ``artifacts_folder``,
``tensor_bits``, ``accuracy_level``, ``debug_level``, ``deny_list``,
``advanced_options:calibration_frames``, ``advanced_options:calibration_iterations``,
``advanced_options:quantization_scale_type`` and ``advanced_options:prequantized_model``.
Compiling = one ORT session with the TIDL compilation provider and one ``run()`` per calibration
frame. It needs TI's ONNX Runtime build and tools, which pip's onnxruntime is not; option
building is tested here, the compile itself only runs where TI's tools are installed.
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
from gradgroup.deploy.fileio import check_writable

log = logging.getLogger(__name__)

# advanced_options:quantization_scale_type per SoC. TDA4VM (J721E) supports symmetric
# power-of-two scales only (1); AM62A/AM68A/AM69A support asymmetric per-channel (4), which TI
# recommends where available.
SCALE_TYPE_P2 = 1
SCALE_TYPE_ASYM_PER_CHANNEL = 4
SOCS: dict[str, int] = {
    "tda4vm": SCALE_TYPE_P2,
    "am68a": SCALE_TYPE_ASYM_PER_CHANNEL,
    "am69a": SCALE_TYPE_ASYM_PER_CHANNEL,
    "am62a": SCALE_TYPE_ASYM_PER_CHANNEL,
}
TIDL_SETUP_HINT = (
    "clone github.com/TexasInstruments/edgeai-tidl-tools, run its setup.sh for your SoC "
    "(it installs TI's onnxruntime-tidl wheel and tidl_tools) and pass --tidl-tools PATH/tidl_tools"
)


@dataclass(frozen=True)
class TidlConfig:
    """TIDL compilation settings; maps 1:1 onto ``gradgroup calib --target tidl`` flags.

    Attributes:
        tidl_tools: path to TI's ``tidl_tools`` folder (None: ``$TIDL_TOOLS_PATH``).
        soc: ``tda4vm``, ``am68a``, ``am69a`` or ``am62a`` (picks the quantization scale type).
        set_path: calibration set (.npz); None uses ``<model stem>.calib.npz`` or scenes.
        tensor_bits: 8 or 16.
        accuracy_level: 0 simple min/max calibration, 1 advanced bias calibration (TI default).
        calibration_frames: frames to calibrate on (None: every frame of the set).
        calibration_iterations: bias-calibration iterations.
        debug_level: TIDL's debug output level (0 quiet).
        deny_list: op types kept off the accelerator (e.g. ``("MaxPool",)``).
        options: any further TI option, by TI's name, overriding the above.
    """

    tidl_tools: str | None = None
    soc: str = "am68a"
    set_path: str | None = None
    tensor_bits: int = 8
    accuracy_level: int = 1
    calibration_frames: int | None = None
    calibration_iterations: int = 5
    debug_level: int = 0
    deny_list: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.soc not in SOCS:
            raise InputError(f"--soc {self.soc!r} is not one of {', '.join(SOCS)}")
        if self.tensor_bits not in (8, 16):
            raise InputError(f"--tensor-bits {self.tensor_bits} must be 8 or 16")
        if self.accuracy_level not in (0, 1, 9):
            raise InputError(f"--accuracy-level {self.accuracy_level} must be 0, 1 or 9")
        if self.calibration_frames is not None and self.calibration_frames < 1:
            raise InputError(f"--calibration-frames {self.calibration_frames} must be >= 1")
        if self.calibration_iterations < 1:
            raise InputError(f"--calibration-iterations {self.calibration_iterations} must be >= 1")


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
    if cfg.deny_list:
        options["deny_list"] = ", ".join(cfg.deny_list)
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
    """A finished TIDL compilation."""

    artifacts: str
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
            f"calib success {self.seconds:.1f} s, TIDL artifacts for {self.soc} "
            f"in {self.artifacts} "
            f"({kind})"
        )


def compile_tidl(model_path: str | Path, artifacts: str | Path, cfg: TidlConfig) -> TidlResult:
    """Compile an fp32 or QDQ ONNX model into TIDL artifacts for ``cfg.soc``.

    Artifacts are written into a staging folder next to ``artifacts`` and renamed into place
    only when the compile succeeded.

    Raises:
        MissingDependencyError: TI's ONNX Runtime build or tools are absent.
        InputError: unreadable model, unusable calibration set, artifacts path is a file.
        RunError: the compile failed.
    """
    from gradgroup.deploy.graph.core import load_onnx
    from gradgroup.deploy.metadata import read_meta
    from gradgroup.deploy.runtime import check_segmenter
    from gradgroup.deploy.session import tidl_compile_session

    from .graph import quantized_ops
    from .reader import CalibSetReader, resolve_calibset

    t0 = time.perf_counter()
    tools = find_tidl_tools(cfg.tidl_tools)
    check_tidl_runtime()
    model_path, artifacts = Path(model_path), Path(artifacts)
    if artifacts.exists() and not artifacts.is_dir():
        raise InputError(f"artifacts path {artifacts} is a file; give a folder")
    check_writable(artifacts, "--out", folder=True)
    model = load_onnx(model_path)
    check_segmenter(model, model_path)
    meta = read_meta(model)
    prequantized = bool(quantized_ops(model))
    calib, source = resolve_calibset(model_path, meta, cfg.set_path)
    reader = CalibSetReader(
        calib, model.graph.input[0].name, meta.input_dtype, cfg.calibration_frames
    )
    artifacts.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{artifacts.name}-", dir=artifacts.parent))
    options = tidl_options(cfg, tools, staging, len(reader), prequantized)
    os.environ.setdefault("TIDL_TOOLS_PATH", str(tools))
    log.info(
        "compiling %s for %s with %d frames from %s", model_path.name, cfg.soc, len(reader), source
    )
    try:
        session = tidl_compile_session(model_path, options)
        for feed in iter(reader.get_next, None):  # TIDL calibrates on these runs
            session.run(None, feed)
        del session  # artifacts are flushed when the session is released
        if artifacts.exists():
            shutil.rmtree(artifacts)
        os.replace(staging, artifacts)
    except BaseException as exc:  # no half-written artifacts, whatever stopped the compile
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(exc, Exception) or isinstance(exc, GradgroupError):
            raise
        raise RunError(f"TIDL compilation failed: {first_line(exc)}") from None
    options["artifacts_folder"] = str(artifacts)
    return TidlResult(
        str(artifacts),
        cfg.soc,
        round(time.perf_counter() - t0, 3),
        len(reader),
        prequantized,
        options,
    )
