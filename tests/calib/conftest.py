"""Calibration test fixtures: a tiny fp32 model with its calibration set, quantized once."""

import shutil

import numpy as np
import pytest

CALIB_FRAMES = 8
EVAL_FRAMES = 4


def make_calibset(path, size, frames=CALIB_FRAMES, seed=0):
    """Write a calibration set of procedural scenes at ``size`` (H, W)."""
    from gradgroup.deploy.calibset import save_calibset
    from gradgroup.deploy.preprocess import Preprocess
    from gradgroup.deploy.scenes import render_scene

    images = np.stack([render_scene(seed + i, size)[0] for i in range(frames)])
    return save_calibset(path, images, [f"f{i}" for i in range(frames)], Preprocess(*size))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_onnx):
    """Folder holding ``tiny.onnx`` and its ``tiny.calib.npz`` (as gradgroup export leaves them)."""
    folder = tmp_path_factory.mktemp("calib")
    shutil.copy(tiny_onnx, folder / "tiny.onnx")
    make_calibset(folder / "tiny.calib.npz", (32, 64))
    return folder


@pytest.fixture(scope="session")
def quantized(model_dir):
    """(CalibResult, path) of the tiny model quantized with default settings."""
    from gradgroup.calib.quantize import CalibConfig, quantize

    out = model_dir / "out" / "tiny.int8.onnx"
    result = quantize(model_dir / "tiny.onnx", out, CalibConfig(eval_frames=EVAL_FRAMES))
    return result, out


@pytest.fixture(scope="session")
def calibset_factory():
    """``make_calibset(path, size, frames=8, seed=0)`` for tests that need their own set."""
    return make_calibset
