"""ONNX graph tools shared by export, calib, bench and the checker (torch-free).

- :mod:`.core`: ``load_onnx`` (the one checked loader), :class:`~.core.Graph` (constants,
  producers and consumers of one model, with the edits rewrites need) and small helpers
  (``attr``, ``set_attr``, ``static_shapes``, ``toposort``, ``drop_unused_initializers``);
- :mod:`.stats`: MACs, parameters and activation memory per layer (``graph_stats``,
  ``layer_table``), read from the graph rather than the PyTorch model;
- :mod:`.tidl_check`: which nodes TI's TIDL would run, reject or leave unverified.
"""
