"""A small Open Inference Protocol REST client (standard library only, keep-alive).

For Triton-compatible tooling use ``tritonclient[http]``; this client exists so that the demo,
the benchmarks and the agent can talk to any OIP endpoint without extra dependencies.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from numpy.typing import NDArray

from edgefleet.errors import EdgefleetError
from edgefleet.runtime.dtypes import from_numpy
from edgefleet.runtime.oip.codec import decode_response_outputs, encode_tensor

__all__ = ["OIPClient", "OIPError"]


class OIPError(EdgefleetError):
    """The endpoint answered with an error, or could not be reached."""

    code = "protocol.remote"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OIPClient:
    """One keep-alive connection to an OIP server; not thread-safe (use one per thread)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OIPError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request (reconnecting once if a kept-alive connection was dropped)."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=body, headers=dict(headers))
                response = conn.getresponse()
                return (
                    response.status,
                    {k.lower(): v for k, v in response.getheaders()},
                    response.read(),
                )
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise OIPError(f"{self.url} closed the connection") from None
            except OSError as exc:
                self.close()
                raise OIPError(f"cannot reach {self.url}: {exc.strerror or exc}") from None
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str) -> Any:
        status, _, body = self.request(method, path)
        if status != 200:
            raise OIPError(_error_text(body, status), status)
        return json.loads(body)

    def ready(self) -> bool:
        """Whether ``/v2/health/ready`` answers 200."""
        try:
            return self.request("GET", "/v2/health/ready")[0] == 200
        except OIPError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll readiness until it answers or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise OIPError(f"{self.url} was not ready within {timeout:.0f} s")
            time.sleep(0.05)

    def metadata(self, model: str) -> dict[str, Any]:
        """Model metadata (name, versions, platform, inputs, outputs)."""
        result: dict[str, Any] = self._json("GET", f"/v2/models/{model}")
        return result

    def statistics(self, model: str) -> dict[str, Any]:
        """The statistics extension's record of ``model``."""
        result: dict[str, Any] = self._json("GET", f"/v2/models/{model}/stats")["model_stats"][0]
        return result

    def infer(
        self, model: str, inputs: Mapping[str, NDArray[Any]], *, binary: bool = True
    ) -> dict[str, NDArray[Any]]:
        """Run inference; tensors travel as binary data (default) or JSON."""
        body, headers = encode_request(inputs, binary=binary)
        status, response_headers, payload = self.request(
            "POST", f"/v2/models/{model}/infer", body, headers
        )
        if status != 200:
            raise OIPError(_error_text(payload, status), status)
        length = response_headers.get("inference-header-content-length")
        return decode_response_outputs(payload, None if length is None else int(length))


def encode_request(
    inputs: Mapping[str, NDArray[Any]], *, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """Encode an inference request body and its headers."""
    tensors, blobs = [], []
    for name, array in inputs.items():
        tensor, blob = encode_tensor(name, from_numpy(array.dtype), array, binary=binary)
        tensors.append(tensor)
        if blob is not None:
            blobs.append(blob)
    request: dict[str, Any] = {"inputs": tensors}
    headers = {"Content-Type": "application/json"}
    if binary:
        request["parameters"] = {"binary_data_output": True}
    header = json.dumps(request, separators=(",", ":")).encode()
    if not binary:
        return header, headers
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return b"".join([header, *blobs]), headers


def _error_text(body: bytes, status: int) -> str:
    try:
        return f"HTTP {status}: {json.loads(body)['error']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200]!r}"
