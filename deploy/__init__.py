"""The board side: everything that runs an exported model, torch-free (numpy, onnx, ORT, OpenCV).

It is also the floor every other stage stands on, so the shared contracts live here:

- contracts: :mod:`.classes` (class tables, palettes), :mod:`.preprocess` (resize, normalize,
  layout), :mod:`.metadata` (what every ONNX file carries about itself), :mod:`.calibset`
  (the calibration-set format), :mod:`.errors` (one-line errors), :mod:`.fileio` (atomic writes,
  output checks, run-folder locks);
- runtime: :mod:`.session` (the one place ORT sessions are opened: cpu, tidl, openvino),
  :mod:`.runtime` (``Segmenter``), :mod:`.prediction` / :mod:`.predict` (predictions as files),
  :mod:`.sources` and :mod:`.capture` (frames in), :mod:`.view` and :mod:`.demo` (frames out);
- measurement: :mod:`.bench`, :mod:`.bench_report`, :mod:`.energy`, :mod:`.plots`, and the
  offline SoC estimate :mod:`.estimate` (with :mod:`.estimate_fit`, :mod:`.reference_nets`);
- :mod:`.graph`: ONNX graph tools (loader, ``Graph``, statistics, TIDL checker);
- :mod:`.scenes`: the procedural street scenes; :mod:`.datasets`, :mod:`.evaluate` and
  :mod:`.metrics`: labelled data and its scores.

``from gradgroup import Segmenter`` is the embedding entry point.
"""
