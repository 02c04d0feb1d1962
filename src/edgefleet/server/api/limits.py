"""Request body limits on every endpoint, enforced before the body is read into memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["REFUSAL", "BodyLimit"]

REFUSAL = "edgefleet.refusal"
"""Key of ``scope["state"]`` set to ``(status, body)`` when the client was answered here, mid-way.

Middleware inside :class:`BodyLimit` (the audit trail) reads it: what the application answers
after that never reaches the client, so it is not what happened."""

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


class BodyLimit:
    """ASGI middleware: refuse bodies over ``default`` bytes (``limits`` by path prefix) with 413.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
    body is counted as it streams: at the first chunk past the limit the client gets 413 (in
    the error shape of :mod:`edgefleet.server.api.errors`), nothing more is read, and the
    application sees a disconnected client; whatever it answers or raises then is dropped, and
    the answer the client got is left in ``scope["state"][REFUSAL]``.
    """

    def __init__(self, app: ASGIApp, *, default: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.limits = limits

    def limit_for(self, path: str) -> int:
        """The body limit of ``path``."""
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413 when its body is too large."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "Content-Length is not a number", "protocol.malformed")
                    return
                if declared > limit:
                    await _reject(send, 413, f"request body of {declared} bytes is over {limit}")
                    return
        seen = 0
        too_large = False
        started = False

        async def counting_receive() -> Any:
            nonlocal seen, too_large
            if too_large:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    if not started:
                        body = await _reject(send, 413, f"request body is over {limit} bytes")
                        scope.setdefault("state", {})[REFUSAL] = (413, body)
                    return _DISCONNECT  # the app stops reading; the rest is never received
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if too_large:
                return  # the 413 was the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
            # the app failed on the disconnect it was shown; the client already has its 413


_DISCONNECT = {"type": "http.disconnect"}


async def _reject(send: Send, status: int, message: str, code: str = "protocol.too_large") -> bytes:
    body = json.dumps({"error": message, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return body
