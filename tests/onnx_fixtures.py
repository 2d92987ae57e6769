"""Tiny ONNX models for tests: a zoo model exported with metadata, and ORT's own int8 of it.

Import as ``from onnx_fixtures import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

import numpy as np

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


def int8_model(src, dst):
    """Real static QDQ quantization of the tiny model with ORT's quantizer (2 frames)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.it = iter(
                [{"input": rng.standard_normal((1, 3, *TINY_SIZE), np.float32)} for _ in range(2)]
            )

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    return dst


def run_ort(model, x):
    """Run a single-input ("x") in-memory ONNX model on ORT's CPU provider; first output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]
