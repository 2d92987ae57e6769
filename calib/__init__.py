"""int8 calibration: ONNX Runtime static quantization with measured accuracy cost, and TIDL compile.

``quantize.quantize(model, out, CalibConfig)`` for ONNX Runtime, ``tidl.compile_tidl(model,
out, TidlConfig)`` for TI's accelerators (a package in TI's layout: ``artifacts/``, ``model/``,
``param.yaml``); ``gradgroup calib`` is the CLI. Torch-free.
"""
