"""The device API, one module per protocol version."""
