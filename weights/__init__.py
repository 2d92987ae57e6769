"""Scene-pretrained weights (data): see manifest.json and gradgroup.train.weights."""
