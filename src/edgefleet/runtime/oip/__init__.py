"""The Open Inference Protocol (KServe V2) REST server, with the binary tensor extension."""

from collections.abc import Callable, Mapping

from edgefleet.runtime.oip.http import HTTPServer, Request, Response
from edgefleet.runtime.oip.service import InferenceService
from edgefleet.runtime.oip.status import error_body
from edgefleet.runtime.repository import ModelRepository

__all__ = [
    "HTTPServer",
    "InferenceService",
    "ModelRepository",
    "Request",
    "Response",
    "make_server",
]


def make_server(
    repository: ModelRepository,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_body_bytes: int = 64 * 1024 * 1024,
    routes: Mapping[str, Callable[[Request], Response]] | None = None,
) -> tuple[HTTPServer, InferenceService]:
    """Build (not start) an inference server over ``repository`` (``routes``: extra paths)."""
    service = InferenceService(repository, routes=routes)
    server = HTTPServer(service, host, port, error_body=error_body, max_body_bytes=max_body_bytes)
    return server, service
