"""Shared test settings: small thread counts so the suite behaves on 2 shared cores."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the board-side tests run without torch
    pass


import pytest  # noqa: E402

TINY_SIZE = (32, 64)  # (H, W): divisible by 8, small enough for 2 cores


def export_tiny_onnx(path, arch="dg4-light", size=TINY_SIZE, num_classes=19, seed=0):
    """Export a randomly initialised zoo model to ONNX with gradgroup metadata (test helper).

    Uses torch's exporter directly so runtime/bench/calib tests do not depend on gradgroup.export.
    BN statistics are randomised so the model's output is not degenerate.
    """
    import onnx
    import torch
    from gradgroup.deploy.metadata import ModelMeta, write_meta
    from gradgroup.deploy.preprocess import Preprocess
    from gradgroup.train.models import create_model

    torch.manual_seed(seed)
    model = create_model(arch, num_classes).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(
        model,
        torch.zeros(1, 3, *size),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
    )
    proto = onnx.load(str(path))
    write_meta(proto, ModelMeta(arch=arch, preprocess=Preprocess(*size)))
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Path of a tiny fp32 dg4-light ONNX model (logits output, float NCHW input, metadata)."""
    pytest.importorskip("torch")
    return export_tiny_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
