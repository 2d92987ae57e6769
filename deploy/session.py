"""The one place that opens ONNX Runtime sessions: provider choice, provider options, errors.

Every component that runs a graph (``Segmenter``, export's verification, calib's activation
runner and op census, bench scripts) comes here, so a provider is configured one way and a graph
ORT refuses is reported as one line, whoever opened it.

Providers, by gradgroup's names:

- ``cpu``: ONNX Runtime's own CPU kernels (MLAS).
- ``tidl``: TI's ``TIDLExecutionProvider`` on the C7x/MMA, CPU for the rest; needs TI's
  onnxruntime build and compiled artifacts (the folder, or the package holding it).
- ``openvino``: Intel's OpenVINO execution provider, loaded as an ONNX Runtime plugin from the
  ``onnxruntime-ep-openvino`` wheel (``pip install "gradgroup[openvino]"``) into the stock
  onnxruntime. OpenVINO's own option names pass through ``load_config``.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError, MissingDependencyError, first_line

PROVIDERS = ("cpu", "tidl", "openvino")
# Export and calib name the runtime a model is made for (``--target``) with the same words;
# "ort", their earlier name for the ONNX Runtime form, still means cpu.
TARGET_ALIASES = {"ort": "cpu"}


def resolve_target(name: str) -> str:
    """A ``--target`` name as one of :data:`PROVIDERS` (aliases resolved).

    Raises:
        InputError: not a provider name or alias.
    """
    target = TARGET_ALIASES.get(name, name)
    if target not in PROVIDERS:
        raise InputError(f"target {name!r} is not one of {', '.join(PROVIDERS)}")
    return target


# Our names -> onnxruntime.GraphOptimizationLevel members.
OPT_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disabled": "ORT_DISABLE_ALL",
}
CPU_EP = "CPUExecutionProvider"
TIDL_EP = "TIDLExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"
TIDL_HOWTO = (
    "install TI's onnxruntime build (the onnxruntime_tidl wheel set up by edgeai-tidl-tools' "
    "setup.sh, or the Processor SDK image on the board)"
)
# TI's package layout (edgeai-benchmark's run folders, edgeai-tidl-tools' model-artifacts):
# the compiled artifacts, the model they belong to and the board apps' param.yaml side by side.
TIDL_ARTIFACTS_DIR = "artifacts"
TIDL_MODEL_DIR = "model"
TIDL_PARAM_YAML = "param.yaml"
OPENVINO_HOWTO = 'pip install "gradgroup[openvino]" (the onnxruntime-ep-openvino plugin)'
# OpenVINO CPU settings gradgroup sets unless the user passes their own: full float precision
# (OpenVINO's default on AMX/bf16 CPUs is bf16, which must never be switched on silently) and
# latency over throughput (one frame at a time, as a camera pipeline runs).
OPENVINO_DEFAULTS = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}

log = logging.getLogger(__name__)
_registered: set[str] = set()


def open_session(
    source: bytes | str | Path,
    label: str,
    *,
    provider: str = "cpu",
    threads: int | None = None,
    graph_optimization: str = "all",
    artifacts: str | Path | None = None,
    provider_options: Mapping[str, Any] | None = None,
    optimized_model_path: str | Path | None = None,
    spinning: bool | None = None,
    session_config: Mapping[str, str] | None = None,
    disabled_optimizers: Sequence[str] | None = None,
    quiet: bool = False,
    profile_prefix: str | Path | None = None,
    error: type[Exception] = InputError,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``source`` (file path or serialized model).

    Args:
        label: what the graph is, for the one-line error (``"model dg4.onnx"``).
        provider: one of :data:`PROVIDERS`.
        threads: intra-op threads (None or 0: ORT's default); for OpenVINO also its
            ``INFERENCE_NUM_THREADS`` unless ``provider_options`` sets it.
        provider_options: TI's option names for ``tidl``, OpenVINO's property names for
            ``openvino``; values are passed as strings.
        quiet: drop ORT's warnings (the expected "hardware-specific model" one).
        profile_prefix: turn ORT's profiler on, writing ``<prefix>_<date>.json``.
        error: the exception type raised when ORT refuses the graph.

    Raises:
        InputError: a bad option or a missing TIDL artifacts folder.
        MissingDependencyError: the provider is not installed, or offers no device here.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise InputError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    if graph_optimization not in OPT_LEVELS:
        raise InputError(
            f"graph optimization {graph_optimization!r} is not one of {', '.join(OPT_LEVELS)}"
        )
    if threads is not None and threads < 0:
        raise InputError(f"threads={threads} must be 0 (ORT default) or more")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, OPT_LEVELS[graph_optimization]
    )
    if optimized_model_path:
        options.optimized_model_filepath = str(optimized_model_path)
    if quiet:
        options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    config = dict(session_config or {})
    if spinning is not None:
        config["session.intra_op.allow_spinning"] = "1" if spinning else "0"
    providers: list[str] | None = None
    chosen: list[dict[str, str]] | None = None
    if provider == "cpu":
        if artifacts or provider_options:
            log.warning("provider options and artifacts are ignored with provider 'cpu'")
        providers, chosen = [CPU_EP], [{}]
    elif provider == "tidl":
        providers = [TIDL_EP, CPU_EP]
        chosen = [tidl_provider_options(artifacts, provider_options), {}]
    else:
        if artifacts:
            raise InputError("--artifacts is a TIDL folder; the openvino provider takes none")
        add_openvino(options, threads, provider_options or {})
        # A node OpenVINO cannot run must not land silently on ORT's CPU kernels.
        config.setdefault("session.disable_cpu_ep_fallback", "1")
    for key, value in config.items():
        options.add_session_config_entry(key, str(value))
    try:
        return ort.InferenceSession(
            source if isinstance(source, bytes) else str(source),
            options,
            providers=providers,
            provider_options=chosen,
            disabled_optimizers=list(disabled_optimizers) if disabled_optimizers else None,
        )
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        first = first_line(exc)
        if provider == "openvino":
            first += " (the openvino provider runs the whole graph or refuses it: --provider cpu)"
        raise error(f"ONNX Runtime cannot load {label}: {first}") from None


def tidl_artifacts(path: str | Path) -> Path:
    """The TIDL artifacts folder ``path`` names: itself, or ``path/artifacts`` for a package.

    A package is TI's layout, which ``gradgroup calib --target tidl`` writes: ``artifacts/``,
    ``model/<name>.onnx`` and ``param.yaml`` side by side (edgeai-benchmark, edgeai-tidl-tools).

    Raises:
        InputError: ``path`` is no folder, or a ``param.yaml`` without its ``artifacts/``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(
            f"TIDL artifacts folder {folder} does not exist; compile the model first "
            "(gradgroup calib --target tidl)"
        )
    packaged = folder / TIDL_ARTIFACTS_DIR
    if packaged.is_dir():
        return packaged
    if (folder / TIDL_PARAM_YAML).is_file():
        raise InputError(
            f"TIDL package {folder} has a {TIDL_PARAM_YAML} but no {TIDL_ARTIFACTS_DIR}/ folder; "
            "compile the model again"
        )
    return folder


def tidl_provider_options(
    artifacts: str | Path | None, extra: Mapping[str, Any] | None
) -> dict[str, str]:
    """``TIDLExecutionProvider`` options (TI's names, as strings) for an artifacts folder or a
    package holding one (:func:`tidl_artifacts`)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if TIDL_EP not in available:
        raise MissingDependencyError(
            f"{TIDL_EP} is not in this onnxruntime {ort.__version__} "
            f"(it has {', '.join(available)}); {TIDL_HOWTO}"
        )
    if artifacts is None:
        raise InputError("provider 'tidl' needs the artifacts folder made by TIDL compilation")
    options: dict[str, Any] = {"artifacts_folder": str(tidl_artifacts(artifacts)), "debug_level": 0}
    options.update(extra or {})
    return {k: str(v) for k, v in options.items()}  # TI's runtime reads every option as a string


def openvino_config(threads: int | None, extra: Mapping[str, Any]) -> dict[str, str]:
    """OpenVINO CPU properties: gradgroup's defaults, the thread count, then the user's own."""
    config = dict(OPENVINO_DEFAULTS)
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    config.update({str(k): str(v) for k, v in extra.items()})
    return config


def add_openvino(options: Any, threads: int | None, extra: Mapping[str, Any]) -> None:
    """Register the OpenVINO plugin once per process and add its CPU device to ``options``."""
    load_config = json.dumps({"CPU": openvino_config(threads, extra)})
    options.add_provider_for_devices(openvino_devices(), {"load_config": load_config})


def openvino_devices() -> list[Any]:
    """The OpenVINO plugin's CPU devices (``OrtEpDevice``), registering the plugin if needed.

    Raises:
        MissingDependencyError: no plugin installed, or it offers no CPU device on this machine.
    """
    import onnxruntime as ort

    try:
        import onnxruntime_ep_openvino as plugin
    except ImportError:
        raise MissingDependencyError(
            f"provider 'openvino' needs the OpenVINO plugin: {OPENVINO_HOWTO}"
        ) from None
    if not hasattr(ort, "register_execution_provider_library"):
        raise MissingDependencyError(
            f"onnxruntime {ort.__version__} cannot load execution-provider plugins (1.23+ can)"
        )
    if OPENVINO_EP not in _registered:
        try:
            ort.register_execution_provider_library(OPENVINO_EP, plugin.get_library_path())
        except Exception as exc:  # the plugin's shared library failed to load
            raise MissingDependencyError(
                f"the OpenVINO plugin does not load: {first_line(exc)}"
            ) from None
        _registered.add(OPENVINO_EP)
    cpu = ort.OrtHardwareDeviceType.CPU
    devices = [d for d in ort.get_ep_devices() if d.ep_name == OPENVINO_EP and d.device.type == cpu]
    if not devices:
        vendors = sorted({d.device.vendor for d in ort.get_ep_devices() if d.device.type == cpu})
        raise MissingDependencyError(
            "the OpenVINO plugin offers no CPU device on this machine: it serves Intel devices "
            f"only and this CPU is {', '.join(vendors) or platform.processor() or 'unknown'} "
            "(OpenVINO's own runtime may still run there, outside ONNX Runtime); use --provider cpu"
        )
    return devices


def provider_version(provider: str) -> str:
    """Version of what runs the graph for ``provider`` (for bench headers)."""
    import onnxruntime as ort

    if provider == "openvino":
        from importlib.metadata import PackageNotFoundError, version

        try:
            plugin = version("onnxruntime-ep-openvino")
        except PackageNotFoundError:
            return f"onnxruntime {ort.__version__} (no OpenVINO plugin)"
        return f"onnxruntime {ort.__version__} + onnxruntime-ep-openvino {plugin}"
    return f"onnxruntime {ort.__version__}"


def tidl_compile_session(model_path: str | Path, options: Mapping[str, str]) -> Any:
    """A session on TI's ``TIDLCompilationProvider`` (x86 tools): its runs calibrate TIDL.

    The artifacts are written when the session is released. ORT's refusal is a RunError line.
    """
    import onnxruntime as ort

    from .errors import RunError

    try:
        return ort.InferenceSession(
            str(model_path),
            providers=["TIDLCompilationProvider", CPU_EP],
            provider_options=[dict(options), {}],
        )
    except Exception as exc:  # TI's provider raises ORT's exception types
        raise RunError(f"TIDL compilation failed: {first_line(exc)}") from None
