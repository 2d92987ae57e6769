"""Scene-pretrained weights (data only): see ``manifest.json`` and :mod:`gradgroup.train.weights`."""
