"""The one catalog that maps edgefleet error codes to HTTP statuses.

Error bodies are ``{"error": message, "code": domain code}``, the same shape the OIP server
uses, so clients parse one format. Starlette's own answers (an unknown route, a method the route
does not have, a body that cannot be parsed) use the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edgefleet.errors import (
    AuthError,
    CompatibilityError,
    ConfigurationError,
    ConflictError,
    EdgefleetError,
    ForbiddenError,
    ModelLoadError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
    StoreError,
    UnsupportedError,
    VerificationError,
)

__all__ = ["error_response", "install_error_handlers", "status_for"]

_CATALOG: list[tuple[type[EdgefleetError], int]] = [
    (ForbiddenError, 403),
    (AuthError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (ProtocolError, 400),
    (ModelLoadError, 422),
    (CompatibilityError, 422),
    (VerificationError, 422),
    (ConfigurationError, 400),
    (StoreError, 503),
]


def status_for(exc: EdgefleetError) -> int:
    """HTTP status for a domain error (500 for anything not in the catalog)."""
    for kind, status in _CATALOG:
        if isinstance(exc, kind):
            return status
    return 500


_HTTP_CODES = {
    404: NotFoundError.code,
    405: UnsupportedError.code,
    413: PayloadTooLargeError.code,
}
"""Domain codes of the statuses Starlette answers by itself (other 4xx: protocol.malformed)."""


def error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON error body with ``status``."""
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=all_headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route domain errors and request validation errors through the catalog."""

    async def on_domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EdgefleetError)
        return error_response(status_for(exc), str(exc), exc.code)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return error_response(422, f"invalid request: {problems}", "protocol.malformed")

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        if status == 404:
            message = f"no route {request.url.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        fallback = ProtocolError.code if status < 500 else "server.error"
        return error_response(status, message, _HTTP_CODES.get(status, fallback), exc.headers)

    app.add_exception_handler(EdgefleetError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
