"""Bad input ends in one clear line and a non-zero exit, never a traceback, and touches nothing.

Each row is a command a user could type with a broken or wrong input; grow the table with every
defect found (issue 13).
"""

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from gradgroup.cli import main


def _files(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


def _foreign_models(folder):
    """ONNX models that are not segmenters: a MatMul model and a global-pooling classifier."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 4], np.ones(64, np.float32))
    matmul = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w],
    )  # fmt: skip
    k = helper.make_tensor("k", TensorProto.FLOAT, [10, 3, 1, 1], np.ones(30, np.float32))
    classifier = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["f"]),
         helper.make_node("GlobalAveragePool", ["f"], ["y"])], "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10, 1, 1])], [k],
    )  # fmt: skip
    for graph in (matmul, classifier):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(folder / f"{graph.name}.onnx"))


def _three_class_folder(root):
    """folder: data with its own 3-class table (one 8x8 image)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    table = {"names": ["a", "b", "c"], "palette": [[0, 0, 0], [9, 9, 9], [99, 99, 99]]}
    (root / "classes.json").write_text(json.dumps(table))
    cv2.imwrite(str(root / "images" / "f.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "f.png"), np.zeros((8, 8), np.uint8))


@pytest.fixture
def inputs(tmp_path, tiny_onnx):
    from gradgroup.deploy.preprocess import Preprocess
    from gradgroup.train.checkpoint import model_state
    from gradgroup.train.models import create_model

    (tmp_path / "one-byte.pt").write_bytes(b"\x81")
    torch.save({"model": {}, "model_args": "erfnet"}, tmp_path / "args-string.pt")
    torch.save({"model": {}, "model_args": {"arch": "erfnet", "num_classes": 19}},
               tmp_path / "no-weights.pt")  # fmt: skip
    torch.save(model_state(create_model("dg4-light"), "dg4-light", preprocess=Preprocess(32, 64)),
               tmp_path / "dg4.pt")  # fmt: skip
    (tmp_path / "empty.onnx").write_bytes(b"")
    shutil.copy(tiny_onnx, tmp_path / "tiny.onnx")  # fp32 dg4-light, 19 classes, 32x64
    _foreign_models(tmp_path)
    _three_class_folder(tmp_path / "three")
    (tmp_path / "no-images").mkdir()
    return tmp_path


CASES = {
    "eval a one-byte checkpoint": ["eval", "{d}/one-byte.pt"],
    "eval a checkpoint whose model_args is a string": ["eval", "{d}/args-string.pt"],
    "check a 0-byte ONNX file": ["check", "{d}/empty.onnx"],
    "eval a 0-byte ONNX file": ["eval", "{d}/empty.onnx"],
    "bench a 0-byte ONNX file": ["bench", "{d}/empty.onnx", "--runs", "1"],
    "train from a missing --init": [
        "train",
        "--init",
        "{d}/nope.pt",
        "--out",
        "{d}/run",
        "--size",
        "32x64",
        "--no-progress",
    ],  # fmt: skip
    "train from a one-byte --init": [
        "train",
        "--init",
        "{d}/one-byte.pt",
        "--out",
        "{d}/run",
        "--size",
        "32x64",
        "--no-progress",
        "--train-length",
        "2",
        "--val-length",
        "1",
        "--epochs",
        "2",
    ],  # fmt: skip
    "models at a size the zoo cannot run": ["models", "--size", "13x17"],
    "models at a size that cannot fit in memory": ["models", "--size", "100000x100000"],
    "pipeline with an odd deployment size": [
        "pipeline",
        "--deploy-size",
        "100x77",
        "--out",
        "{d}/pp",
    ],
    "calib with eval data of another class table": [
        "calib",
        "{d}/tiny.onnx",
        "--out",
        "{d}/o.onnx",
        "--eval-data",
        "folder:{d}/three",
    ],
    "calib --exclude of a node the model lacks": [
        "calib",
        "{d}/tiny.onnx",
        "--out",
        "{d}/o.onnx",
        "--no-eval",
        "--exclude",
        "NoSuchNode",
    ],
    "calib --exclude with a typo": [
        "calib",
        "{d}/tiny.onnx",
        "--out",
        "{d}/o.onnx",
        "--no-eval",
        "--exclude",
        "/initial_block/conv/Cnv",
    ],
    "calib --op-types of an op ORT does not quantize": [
        "calib",
        "{d}/tiny.onnx",
        "--out",
        "{d}/o.onnx",
        "--no-eval",
        "--op-types",
        "Bogus",
    ],
    "calib --op-types of an op the model lacks": [
        "calib",
        "{d}/tiny.onnx",
        "--out",
        "{d}/o.onnx",
        "--no-eval",
        "--op-types",
        "Gemm",
    ],
    **{
        f"{command} a {kind} model": [command, f"{{d}}/{kind}.onnx", *extra]
        for kind in ("matmul", "classifier")
        for command, extra in (
            ("calib", ["--out", "{d}/o.onnx"]),
            ("bench", ["--runs", "1", "--warmup", "0", "--no-progress"]),
            ("demo", ["--no-show", "--max-frames", "1"]),
            ("eval", []),
        )
    },
    "export with --calib-data of a folder without images": [
        "export",
        "{d}/dg4.pt",
        "--out",
        "{d}/x.onnx",
        "--calib-data",
        "images:{d}/no-images",
    ],
    "bench --calib of a folder": [
        "bench",
        "{d}/tiny.onnx",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--no-progress",
        "--calib",
        "{d}/three",
    ],
    "eval a checkpoint without weights": ["eval", "{d}/no-weights.pt"],
}

# What the error line must say, where a silent, wrong or cut-off message was the defect.
SAYS = {
    "calib with eval data of another class table": "has 3 classes but tiny.onnx predicts 19",
    "calib --exclude of a node the model lacks": "--exclude NoSuchNode: no node",
    "calib --exclude with a typo": "did you mean /initial_block/conv/Conv",
    "calib --op-types of an op ORT does not quantize": "does not quantize 'Bogus'",
    "calib --op-types of an op the model lacks": "the model has no Gemm node",
    **{name: "is not a segmentation model" for name in CASES if name.endswith(" model")},
    "export with --calib-data of a folder without images": "--calib-data images:",
    "bench --calib of a folder": "is a folder",
    "eval a checkpoint without weights": "0 of 343 tensors fit, 343 missing (",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_nothing_is_written(inputs, capsys, case):
    before = _files(inputs)
    code = main([a.format(d=inputs) for a in CASES[case]])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gradgroup: error:")]
    assert len(errors) == 1, err
    assert SAYS.get(case, "") in errors[0]
    assert _files(inputs) == before
