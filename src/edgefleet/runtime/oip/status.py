"""The one place that maps edgefleet error codes to HTTP statuses for the inference server."""

from __future__ import annotations

import json

from edgefleet.errors import EdgefleetError

__all__ = ["error_body", "http_status"]

_BY_PREFIX = {
    "input.": 400,
    "protocol.too_large": 413,
    "protocol.unsupported": 501,
    "protocol.": 400,
    "config.": 400,
    "pipeline.": 400,
    "model.not_found": 404,
    "model.unavailable": 503,
    "model.load": 500,
    "inference.": 500,
}


def http_status(error: EdgefleetError) -> int:
    """HTTP status for a domain error (500 for codes the catalog does not know)."""
    for prefix, status in _BY_PREFIX.items():
        if error.code.startswith(prefix):
            return status
    return 500


def error_body(message: str) -> bytes:
    """An Open Inference Protocol error body: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()
