"""A small HTTP client for the operator API, used by the fleet commands of the CLI."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from edgefleet.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    EdgefleetError,
    ForbiddenError,
    MissingExtraError,
    NotFoundError,
    PayloadTooLargeError,
    UplinkError,
    error_class,
)

__all__ = ["OperatorClient", "error_from_response"]

PREFIX = "/api/operator/v1"
_BY_STATUS: dict[int, type[EdgefleetError]] = {
    400: ConfigurationError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ConfigurationError,
    502: UplinkError,
    503: UplinkError,
    504: UplinkError,
}
"""For answers without a code this version knows (a newer server, a proxy's error page)."""


def error_from_response(status: int, body: bytes) -> EdgefleetError:
    """The error a server answer stands for.

    The class of its ``code`` (every code of :mod:`edgefleet.errors` is known, so nothing can
    drift), else one chosen by the HTTP status.

    Examples
    --------
    >>> error_from_response(422, b'{"error": "opset 99", "code": "model.incompatible"}')
    CompatibilityError('opset 99 (HTTP 422)')
    >>> error_from_response(502, b"<html>Bad Gateway</html>")
    UplinkError('<html>Bad Gateway</html> (HTTP 502)')
    """
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        message, code = str(decoded.get("error", decoded)), str(decoded.get("code", ""))
    else:
        message, code = body[:500].decode("utf-8", "replace"), ""
    kind = error_class(code)
    if kind is None or kind is MissingExtraError:  # the server's extras are not ours to install
        kind = _BY_STATUS.get(status, EdgefleetError)
    return kind(f"{message} (HTTP {status})")


class OperatorClient:
    """Calls the operator API with a bearer token; server errors become edgefleet errors."""

    def __init__(
        self, server: str, token: str, *, ca_file: Path | None = None, timeout: float = 300.0
    ) -> None:
        if not token:
            raise ConfigurationError(
                "no operator token: pass --token or set EDGEFLEET_TOKEN "
                "(`edgefleet server init` printed one and wrote it to <data-dir>/operator-token)"
            )
        self.server = server.rstrip("/")
        self._client = httpx.Client(
            base_url=self.server + PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded JSON body."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UplinkError(f"cannot reach the server at {self.server}: {exc}") from exc
        if response.is_success:
            return response.json()
        raise error_from_response(response.status_code, response.content)

    def push(
        self,
        model: Path,
        *,
        name: str,
        version: str | None,
        golden: int,
        calibration: Path | None,
    ) -> Any:
        """Upload a model file (and a calibration set) to the registry."""
        data: dict[str, str] = {"name": name, "golden": str(golden)}
        if version:
            data["version"] = version
        with model.open("rb") as f:
            files: dict[str, Any] = {"file": (model.name, f, "application/octet-stream")}
            if calibration is None:
                return self.request("POST", "/models", data=data, files=files)
            with calibration.open("rb") as c:
                files["calibration"] = (calibration.name, c, "application/octet-stream")
                return self.request("POST", "/models", data=data, files=files)
