"""HTTP layer of the control plane: the device API (v1) and the operator API."""
