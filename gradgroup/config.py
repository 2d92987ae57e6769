"""What ``gradgroup pipeline`` runs: its settings and the pipeline's fixed sizes.

A module of its own so the pipeline, its stages and its report all import the settings from one
place below them (the CLI in ``cli_pipeline`` maps flags onto ``PipelineConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import check_model_size

STAGES = ("train", "export", "calib", "bench", "demo", "report")
EPOCHS = 6  # validation points per training run; the last one fine-tunes at alpha = 0
VAL_IMAGES = 48  # validation during training (choosing best.pt)
# Share of a model's budget the first plan gives training steps; the rest is data, validation and
# checkpoints. Only a first guess: the trainer re-sizes the epochs after each one (fit_minutes).
TRAIN_SHARE = 0.85
HELD_OUT = 200  # validation scenes the exported models are scored on, fp32 and int8 alike


@dataclass(frozen=True)
class PipelineConfig:
    """What ``gradgroup pipeline`` runs; flags map 1:1 onto it.

    Attributes:
        out: output folder (re-running with the same folder resumes).
        arch: the efficient model, trained with gradual grouping.
        baseline: the dense reference it is compared with, trained for the same budget.
        size: training and model input size (H, W).
        deploy_size: size at which latency is also measured (the camera's 1024x512 by default).
        budget_min: training minutes per model (sets the number of iterations).
        data: ``synthetic``, ``cityscapes:DIR`` or ``folder:DIR``.
        batch_size: training batch size.
        init: where the efficient model starts: ``shipped`` (the project's scene-pretrained
            dense start, on synthetic data only), ``none`` (from scratch) or a checkpoint path.
        baseline_init: the same for the baseline (``shipped``: fine-tuned from its weights).
        lr: Adam learning rate; None: 2e-3 from scratch (budget runs are short), 1e-3 from a
            trained start.
        max_drop: mIoU the int8 models may lose before layers stay in float, a fraction
            (``--max-drop`` takes points: 2 is 0.02).
        bench_seconds: timed seconds per model in the benchmark.
        demo_frames: frames of the synthetic drive rendered to the demo video.
        threads: ONNX Runtime threads for the benchmark and the demo.
        provider: execution provider of the benchmark and the demo: ``cpu`` or ``openvino``
            (``tidl`` needs compiled artifacts: bench those with ``gradgroup bench``).
        fps_target: the frame-rate budget.
        device: ``auto``, ``cpu`` or ``cuda`` for training.
        seed: seeds training and the scenes.
    """

    out: str = "runs/pipeline"
    arch: str = "dg4-light"
    baseline: str = "erfnet"
    size: tuple[int, int] = (128, 256)
    deploy_size: tuple[int, int] = (512, 1024)
    budget_min: float = 6.0
    data: str = "synthetic"
    batch_size: int = 8
    init: str = "shipped"
    baseline_init: str = "shipped"
    lr: float | None = None
    max_drop: float = 0.02
    bench_seconds: float = 4.0
    demo_frames: int = 60
    threads: int = 2
    provider: str = "cpu"
    fps_target: float = 30.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget_min <= 0:
            raise InputError(f"--budget-min {self.budget_min} must be positive")
        check_model_size(self.size, "--size")
        check_model_size(self.deploy_size, "--deploy-size")
        for flag, value in (("--init", self.init), ("--baseline-init", self.baseline_init)):
            if value not in ("shipped", "none") and not Path(value).expanduser().is_file():
                raise InputError(f"{flag} {value}: no such checkpoint (or use shipped / none)")
        if self.provider not in ("cpu", "openvino"):
            raise InputError(
                f"--provider {self.provider}: the pipeline benchmarks on cpu or openvino; "
                "TIDL needs compiled artifacts (gradgroup calib --target tidl, then gradgroup "
                "bench --provider tidl --artifacts DIR)"
            )
        if self.arch == self.baseline:
            raise InputError(f"--arch and --baseline are both {self.arch!r}; pick two models")

    @property
    def models(self) -> tuple[str, str]:
        """(efficient model, baseline) — the order of the report's rows."""
        return self.arch, self.baseline
