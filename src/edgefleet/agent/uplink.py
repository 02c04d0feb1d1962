"""The agent's HTTP client for the device API (outgoing connections only).

Every failure becomes an :class:`~edgefleet.errors.UplinkError`: transport problems (no route,
timeout, TLS) as the base class, answers other than 2xx as :class:`RefusedError` carrying the
status and the server's own message, and 401/403 as :class:`CredentialRejectedError`.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from edgefleet import __version__
from edgefleet.errors import ConfigurationError, UplinkError
from edgefleet.protocol.v1 import (
    API_PREFIX,
    FL_EXAMPLES_HEADER,
    FL_METRICS_HEADER,
    BatchAck,
    EnrollRequest,
    EnrollResponse,
    EventBatch,
    FLDecline,
    FLUpdateAck,
    Heartbeat,
    HeartbeatAck,
    SignedDesiredState,
    TelemetryBatch,
)

__all__ = [
    "CredentialRejectedError",
    "RefusedError",
    "RequestTooLargeError",
    "Uplink",
    "tls_context",
]

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)


class RefusedError(UplinkError):
    """The control plane answered, but not with 2xx.

    Attributes
    ----------
    status
        The HTTP status.
    message
        The server's error message (``{"error": ...}`` of its body), or the body's start.
    server_code
        The server's domain error code, when it sent one (``code`` stays the agent's).
    from_server
        Whether the body had the control plane's error shape (a JSON object with string
        ``error`` and ``code``); an answer from something else on the way (a reverse proxy's
        HTML 404, a load balancer's 502) does not.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "",
        *,
        what: str = "",
        from_server: bool = False,
    ) -> None:
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}the control plane answered HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.server_code = code
        self.from_server = from_server

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed (server trouble, throttling, timeouts)."""
        return self.status >= 500 or self.status in (408, 425, 429)

    @property
    def permanent(self) -> bool:
        """Whether the same request would be refused again: the server refused its content.

        Only an answer in the control plane's error shape with a status about the content
        (400, 413, 422) counts. Anything else may pass later and is retried like an outage:
        401 and 403 are about the credential (it may be restored), 408, 425 and 429 about
        timing, and a 404 or 405 in HTML (or any answer without the error shape) comes from
        something misconfigured on the way, not from the control plane judging the request.
        A 413 is permanent for one item only; the uploader splits larger batches first.

        >>> RefusedError(422, "bad", "validation", from_server=True).permanent
        True
        >>> RefusedError(404, "<html>Not Found</html>").permanent
        False
        >>> RefusedError(404, "no such route", "not_found", from_server=True).permanent
        False
        """
        return self.from_server and self.status in _CONTENT_REFUSALS


_CONTENT_REFUSALS = frozenset({400, 413, 422})
"""Statuses that, in the control plane's error shape, refuse a request for its content."""


class CredentialRejectedError(RefusedError):
    """401 or 403: the device credential (or enrolment token) is unknown, revoked or expired."""


class RequestTooLargeError(UplinkError):
    """A request body is over the agent's own limit; it was not sent."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    """TLS verification settings: the system's CAs, or only those in ``ca_file``.

    Raises
    ------
    ConfigurationError
        ``ca_file`` is missing or holds no usable certificate.
    """
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot use CA file {ca_file}: {exc}") from exc


class Uplink:
    """A small client for ``/api/device/v1`` with timeouts, TLS and a bearer credential.

    Parameters
    ----------
    server_url
        Root URL of the control plane (``https://host:port``).
    credential
        Bearer secret from enrolment; ``None`` before enrolment.
    ca_file
        PEM file of CAs to trust instead of the system's.
    timeout_s
        Timeout of a request (a long poll adds its wait).
    max_request_bytes
        Request bodies over this are refused before sending (a programming or spool error).
    """

    def __init__(
        self,
        server_url: str,
        *,
        credential: str | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 30.0,
        max_request_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.base_url = self.server_url + API_PREFIX
        self.timeout_s = timeout_s
        self.max_request_bytes = max_request_bytes
        headers = {"User-Agent": f"edgefleet-agent/{__version__}"}
        if credential is not None:
            headers["Authorization"] = f"Bearer {credential}"
        verify = tls_context(ca_file)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self.client = httpx.Client(
            verify=verify, timeout=timeout, headers=headers, follow_redirects=False
        )
        # Long polls get a pool of their own: closing it ends a poll in flight at once, and
        # a pool closed under a request can orphan that request's connection, which must not
        # happen to the heartbeat or upload sharing ``client``.
        self._poll_client = httpx.Client(
            verify=verify, timeout=timeout, headers=headers, follow_redirects=False
        )
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """End a long poll in flight (the agent is stopping); other requests finish normally.

        The poll then returns ``None`` (nothing new), not the socket error the closed pool
        gives it (``EBADF``): ending it was intended, so there is nothing to report.
        """
        self._interrupted.set()
        self._poll_client.close()

    def close(self) -> None:
        """Close both connection pools (once no thread uses them)."""
        self._poll_client.close()
        self.client.close()

    def __enter__(self) -> Uplink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ----------------------------------------------------------------------------

    def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """``POST /enroll``: exchange an enrolment token for the device's identity."""
        response = self._request("POST", "/enroll", "enrolment", body=request)
        return _parse(EnrollResponse, response, "enrolment")

    def heartbeat(self, heartbeat: Heartbeat) -> HeartbeatAck:
        """``POST /heartbeat``."""
        response = self._request("POST", "/heartbeat", "heartbeat", body=heartbeat)
        return _parse(HeartbeatAck, response, "heartbeat")

    def desired_state(
        self, *, known_version: int | None = None, wait_s: float = 0.0
    ) -> SignedDesiredState | None:
        """``GET /desired-state``; ``None`` when unchanged (304) or none is set yet (204).

        ``known_version`` goes into ``If-None-Match``; ``wait_s`` asks the server to hold the
        request until something changes (long polling).
        """
        headers = {} if known_version is None else {"If-None-Match": f'"{known_version}"'}
        params = {"wait": f"{wait_s:g}"} if wait_s > 0 else None
        try:
            response = self._request(
                "GET",
                "/desired-state",
                "desired state",
                headers=headers,
                params=params,
                timeout=self.timeout_s + wait_s,
                client=self._poll_client if wait_s > 0 else self.client,
            )
        except (UplinkError, RuntimeError):  # RuntimeError: the pool was closed before sending
            if wait_s > 0 and self._interrupted.is_set():
                return None
            raise
        if response.status_code in (204, 304):
            return None
        return _parse(SignedDesiredState, response, "desired state")

    def send_events(self, batch: EventBatch) -> BatchAck:
        """``POST /events``."""
        return _parse(BatchAck, self._request("POST", "/events", "events", body=batch), "events")

    def send_telemetry(self, batch: TelemetryBatch) -> BatchAck:
        """``POST /telemetry``."""
        response = self._request("POST", "/telemetry", "telemetry", body=batch)
        return _parse(BatchAck, response, "telemetry")

    def fl_model(self, job_id: str, round_: int) -> bytes:
        """``GET /fl/{job}/{round}/model``: the round's global model (float32 little-endian)."""
        response = self._request("GET", f"/fl/{job_id}/{round_}/model", "federated model")
        return response.content

    def fl_update(
        self, job_id: str, round_: int, payload: bytes, examples: int, metrics: str
    ) -> FLUpdateAck:
        """``POST /fl/{job}/{round}/update``: upload an encoded update (no size cap here)."""
        response = self._request(
            "POST",
            f"/fl/{job_id}/{round_}/update",
            "federated update",
            content=payload,
            headers={
                "Content-Type": "application/octet-stream",
                FL_EXAMPLES_HEADER: str(examples),
                FL_METRICS_HEADER: metrics,
            },
        )
        return _parse(FLUpdateAck, response, "federated update")

    def fl_decline(self, job_id: str, round_: int, reason: str) -> FLUpdateAck:
        """``POST /fl/{job}/{round}/decline``."""
        body = FLDecline(reason=reason[:1000])
        response = self._request("POST", f"/fl/{job_id}/{round_}/decline", "decline", body=body)
        return _parse(FLUpdateAck, response, "decline")

    # -- plumbing -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: BaseModel | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if body is not None:
            content = body.model_dump_json().encode()
            if len(content) > self.max_request_bytes:
                raise RequestTooLargeError(
                    f"{what}: request body of {len(content)} bytes is over the agent's limit "
                    f"of {self.max_request_bytes} bytes"
                )
            all_headers["Content-Type"] = "application/json"
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = (client or self.client).request(
                method,
                self.base_url + path,
                content=content,
                headers=all_headers,
                params=params,
                **extra,
            )
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise UplinkError(f"{what}: cannot reach {self.server_url}: {detail}") from exc
        if response.status_code in (401, 403):
            message, code, shaped = _error_message(response)
            raise CredentialRejectedError(
                response.status_code, message, code, what=what, from_server=shaped
            )
        if not 200 <= response.status_code < 300 and response.status_code != 304:
            message, code, shaped = _error_message(response)
            raise RefusedError(response.status_code, message, code, what=what, from_server=shaped)
        return response


def _error_message(response: httpx.Response) -> tuple[str, str, bool]:
    """The answer's message, the server's error code, and whether it had the error shape."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), str) and isinstance(data.get("code"), str):
            return data["error"], data["code"], True
        for key in ("error", "detail", "message"):
            if isinstance(data.get(key), str):
                return data[key], str(data.get("code", "")), False
    text = response.text.strip()
    return (text[:200] or response.reason_phrase or "no message"), "", False


def _parse(model: type[_M], response: httpx.Response, what: str) -> _M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise UplinkError(f"{what}: the control plane sent an invalid answer: {exc}") from exc
