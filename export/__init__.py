"""Export stage: checkpoint -> verified ONNX with true grouped convs, TIDL-legal on request.

Public API (imported from the modules, so ``import gradgroup.export`` stays light):

- :func:`gradgroup.export.onnx_export.export_onnx` with :class:`~.onnx_export.ExportConfig`;
- graph rewrites: the registry in :mod:`gradgroup.deploy.graph.rewrites`, which calib shares;
- calibration frames: :func:`gradgroup.export.calib_data.collect_calib_frames`.
"""
