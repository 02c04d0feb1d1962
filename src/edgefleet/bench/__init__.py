"""``edgefleet bench``: measure a model on this device and against the cloud, then decide."""
