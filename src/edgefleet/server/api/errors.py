"""The one catalog that maps edgefleet error codes to HTTP statuses.

Error bodies are ``{"error": message, "code": domain code}``, the same shape the OIP server
uses, so clients parse one format.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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


def error_response(status: int, message: str, code: str) -> JSONResponse:
    """A JSON error body with ``status``."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


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

    app.add_exception_handler(EdgefleetError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
