"""int8 calibration: ONNX Runtime static quantization with measured accuracy cost, and TIDL compile.

``quantize.quantize(model, out, CalibConfig)`` for ONNX Runtime, ``tidl.compile_tidl(model,
artifacts, TidlConfig)`` for TI's accelerators; ``gradgroup calib`` is the CLI. Torch-free.
"""
