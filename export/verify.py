"""Export verification: the PyTorch model against ONNX Runtime on procedural street scenes.

The reference is the PyTorch model in its deploy form (grouped convs, BN not folded) fed through
deploy's own preprocessing; the ONNX graph gets the same frames as deploy would feed it (normalized
float or raw uint8). A stage passes when the largest absolute logit difference is at most
:data:`MAX_ABS_DIFF` times the logits' scale (their largest magnitude, at least 1) and at least
:data:`MIN_AGREEMENT` of the pixels get the same class. The bound is relative because two correct
fp32 implementations differ in proportion to the values they sum: a trained model's logits reach
tens, and at 512x1024 ORT and PyTorch then differ by a few 1e-3 while agreeing on > 99.99 % of
pixels; a wrong graph differs by the size of the logits themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import torch

from gradgroup.deploy.errors import RunError
from gradgroup.deploy.preprocess import Preprocess, normalize, to_layout
from gradgroup.deploy.scenes import render_scene
from gradgroup.deploy.session import open_session
from gradgroup.deploy.table import format_table

MAX_ABS_DIFF = 1e-3
MIN_AGREEMENT = 0.999
SCENE_SEED = 900_000  # away from the seeds training and calibration draw from


@dataclass(frozen=True)
class Check:
    """One verified graph: how far it is from PyTorch on the verification frames."""

    stage: str  # "raw", "final", "final+argmax", ...
    frames: int
    max_abs_diff: float | None  # None when the graph outputs class ids
    argmax_agreement: float
    logit_scale: float = 1.0  # largest |reference logit|

    @property
    def diff_limit(self) -> float:
        """The allowed max |logit diff|: MAX_ABS_DIFF relative to the logits' scale (>= 1)."""
        return MAX_ABS_DIFF * max(1.0, self.logit_scale)

    @property
    def passed(self) -> bool:
        diff_ok = self.max_abs_diff is None or self.max_abs_diff <= self.diff_limit
        return diff_ok and self.argmax_agreement >= MIN_AGREEMENT

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def verification_frames(spec: Preprocess, count: int = 4) -> np.ndarray:
    """``count`` procedural street scenes at the model size, (N, H, W, 3) uint8 RGB."""
    return np.stack([render_scene(SCENE_SEED + i, spec.size)[0] for i in range(count)])


@torch.no_grad()
def torch_logits(model: torch.nn.Module, frames: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Reference logits (N, C, H, W) of the deploy-form model on deploy-preprocessed frames."""
    model.eval()
    outs = []
    for rgb in frames:
        x = normalize(rgb, spec)
        if spec.layout == "NHWC":  # the network itself is NCHW; the exported graph transposes
            x = x.transpose(0, 3, 1, 2)
        outs.append(model(torch.from_numpy(np.ascontiguousarray(x))).numpy())
    return np.concatenate(outs)


def ort_outputs(
    model: onnx.ModelProto, frames: np.ndarray, spec: Preprocess, input_dtype: str
) -> np.ndarray:
    """Run the graph on each frame (as deploy would prepare it); outputs concatenated on axis 0."""
    sess = open_session(model.SerializeToString(), "the exported graph", threads=1, error=RunError)
    name = sess.get_inputs()[0].name
    outs = []
    for rgb in frames:
        x = to_layout(rgb, spec) if input_dtype == "uint8" else normalize(rgb, spec)
        outs.append(sess.run(None, {name: x})[0])
    return np.concatenate(outs)


def compare(stage: str, reference: np.ndarray, output: np.ndarray) -> Check:
    """Compare reference logits with a graph's output (logits, or a class map of shape N,1,H,W)."""
    expected = reference.argmax(1)
    if output.ndim == 4 and output.shape[1] == 1 and reference.shape[1] != 1:
        diff, classes = None, output[:, 0].astype(np.int64)
    else:
        if output.shape != reference.shape:
            raise RunError(f"{stage} graph outputs {output.shape}, PyTorch {reference.shape}")
        diff, classes = float(np.abs(output - reference).max()), output.argmax(1)
    agreement = float((classes == expected).mean())
    return Check(stage, len(reference), diff, agreement, float(np.abs(reference).max()))


def require(checks: list[Check]) -> None:
    """Raise RunError naming the first check that failed."""
    for c in checks:
        if not c.passed:
            diff = "n/a" if c.max_abs_diff is None else f"{c.max_abs_diff:.3g}"
            raise RunError(
                f"export verification failed on the {c.stage} graph: max |logit diff| {diff} "
                f"(limit {c.diff_limit:.3g} = {MAX_ABS_DIFF:g} x max |logit| "
                f"{max(1.0, c.logit_scale):.3g}), argmax agreement {c.argmax_agreement:.4%} "
                f"(limit {MIN_AGREEMENT:.1%}); the ONNX graph does not compute what PyTorch does"
            )


def format_checks(checks: list[Check]) -> str:
    """The console table of verification results."""
    rows = [
        [
            c.stage,
            c.frames,
            "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.2e}",
            f"{c.diff_limit:.2e}",
            f"{c.argmax_agreement:.4%}",
            "ok" if c.passed else "FAIL",
        ]
        for c in checks
    ]
    return format_table(["graph", "frames", "max |diff|", "limit", "argmax agree", ""], rows)
