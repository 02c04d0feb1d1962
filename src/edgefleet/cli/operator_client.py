"""A small HTTP client for the operator API, used by the fleet commands of the CLI."""

from __future__ import annotations

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
    ModelLoadError,
    NotFoundError,
    PayloadTooLargeError,
    UplinkError,
)

__all__ = ["OperatorClient"]

PREFIX = "/api/operator/v1"
_BY_CODE: dict[str, type[EdgefleetError]] = {
    "auth.denied": AuthError,
    "auth.forbidden": ForbiddenError,
    "resource.not_found": NotFoundError,
    "resource.conflict": ConflictError,
    "model.load": ModelLoadError,
    "protocol.too_large": PayloadTooLargeError,
    "config.invalid": ConfigurationError,
    "protocol.malformed": ConfigurationError,
}


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
        try:
            body = response.json()
            message, code = str(body.get("error", body)), str(body.get("code", ""))
        except ValueError:
            message, code = response.text[:500], ""
        kind = _BY_CODE.get(code, UplinkError)
        raise kind(f"{message} (HTTP {response.status_code})")

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
