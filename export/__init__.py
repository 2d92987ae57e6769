"""Export stage: checkpoint -> verified ONNX with true grouped convs, TIDL-legal on request.

Public API (imported from the modules, so ``import gradgroup.export`` stays light):

- :func:`gradgroup.export.onnx_export.export_onnx` with :class:`~.onnx_export.ExportConfig`;
- graph rewrites: :data:`gradgroup.export.rewrites.REWRITES`, ``apply_rewrites(model, names)``;
- calibration frames: :func:`gradgroup.export.calib_data.collect_calib_frames`.
"""
