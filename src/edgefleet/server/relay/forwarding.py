"""The relay's pass-through: a device request sent upstream unchanged, its answer streamed back.

Long polls of the desired state pass through like any request, except when the relay begins to
stop: then the polls it holds answer 304 at once (as the control plane answers its own), so
the relay stops without waiting them out or cancelling them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from edgefleet.server.api.errors import error_response

__all__ = ["Forwarder"]

_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


class Forwarder:
    """Sends device requests to ``upstream`` with ``client``; create it on the running loop."""

    def __init__(self, upstream: str, client: httpx.AsyncClient) -> None:
        self.upstream = upstream
        self.client = client
        self.stopping = False
        """Set by :meth:`begin_shutdown`: held long polls answer now, new ones do not wait."""
        self._stopped = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def begin_shutdown(self) -> None:
        """The relay begins to stop: the long polls it holds answer 304 now.

        Safe to call from a signal handler (the wake-up is scheduled on the relay's loop).
        """
        self.stopping = True
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def forward(self, request: Request) -> Response:
        """Send ``request`` upstream unchanged and stream the answer back.

        A long poll (a ``GET`` with ``wait`` and ``If-None-Match``) that is still waiting when
        the relay begins to stop is answered 304 with the device's own version, as the control
        plane answers its held polls then: the device polls again later. Its upstream request
        is closed.
        """
        known = request.headers.get("if-none-match")
        poll = request.method == "GET" and known is not None and "wait" in request.query_params
        if poll and self.stopping:
            return Response(status_code=304, headers={"ETag": known or ""})
        url = httpx.URL(self.upstream + request.url.path, query=request.url.query.encode())
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if k.decode("latin-1").lower() not in _HOP | {"content-length"}
        ]
        outgoing = self.client.build_request(
            request.method, url, headers=headers, content=await request.body()
        )
        try:
            if poll:
                sent = await self._unless_stopping(self.client.send(outgoing, stream=True))
                if sent is None:
                    return Response(status_code=304, headers={"ETag": known or ""})
                answer = sent
            else:
                answer = await self.client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            return error_response(
                504, "the upstream control plane did not answer in time", "relay.upstream"
            )
        except httpx.HTTPError as exc:
            return error_response(
                502, f"the upstream control plane is unreachable: {exc}", "relay.upstream"
            )
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )
        response.raw_headers = [
            (k.lower(), v) for k, v in answer.headers.raw if k.decode("latin-1").lower() not in _HOP
        ]
        return response

    async def _unless_stopping(
        self, sending: Coroutine[Any, Any, httpx.Response]
    ) -> httpx.Response | None:
        """The upstream's answer, or None when the relay begins to stop first."""
        send = asyncio.ensure_future(sending)
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((send, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if send.done():
            return send.result()
        send.cancel()  # closes the upstream request; its cancellation ends here
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            late = await send
            await late.aclose()  # it arrived just as the relay began to stop
        return None
