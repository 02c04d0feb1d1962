"""A small HTTP/1.1 server for the inference path: keep-alive, limits, graceful shutdown.

One thread per connection; ONNX Runtime releases the GIL while it computes, so connections run
inference in parallel. Sockets use TCP_NODELAY (without it, keep-alive plus delayed ACKs costs
tens of milliseconds a request). A request body is always read in full before answering, so an
error never leaves bytes behind that would corrupt the next request on the connection; only a
body over the size limit is not read, and that connection is closed after the 413.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, cast

__all__ = ["HTTPServer", "Request", "Response"]

log = logging.getLogger(__name__)

_MAX_LINE = 8192
_MAX_HEADERS = 100
_MAX_DISCARD = 16 * 1024 * 1024
_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """One HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False, drain: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.close = close
        self.drain = drain


Handler = Callable[[Request], Response]
ErrorBody = Callable[[str], bytes]


class HTTPServer:
    """Serves ``handler`` on ``host:port`` until :meth:`shutdown`.

    Parameters
    ----------
    handler
        Called once per request, from the connection's thread.
    error_body
        Builds the body of errors found while parsing HTTP (before the handler runs).
    max_body_bytes
        Larger request bodies get 413 and the connection is closed.
    idle_timeout
        Seconds an idle keep-alive connection is kept open.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        error_body: ErrorBody,
        max_body_bytes: int = 64 * 1024 * 1024,
        idle_timeout: float = 75.0,
    ) -> None:
        self.handler = handler
        self.error_body = error_body
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self._listener = socket.create_server((host, port), reuse_port=False, backlog=256)
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._idle: set[socket.socket] = set()
        self._busy = 0
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stopping(self) -> bool:
        """Whether shutdown has begun."""
        return self._stopping.is_set()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` is called."""
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    break  # the listener was closed by shutdown()
                try:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:  # the client reset the connection before we saw it
                    conn.close()
                    continue
                thread = threading.Thread(target=self._connection, args=(conn,), daemon=True)
                with self._lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            self._stopped.set()

    def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace`` s), close the rest."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                idle = list(self._idle)
                busy = self._busy
            for conn in idle:  # wake threads blocked reading the next request
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RD)
            if busy == 0 and not idle:
                break
            time.sleep(0.01)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- one connection -----------------------------------------------------------------------

    def _connection(self, conn: socket.socket) -> None:
        reader = cast(BinaryIO, conn.makefile("rb", buffering=65536))
        try:
            keep_alive = True
            while keep_alive:
                with self._lock:
                    # checked under the lock: shutdown() sets the flag and then wakes every
                    # idle connection, so a connection is either woken or never waits
                    if self._stopping.is_set():
                        break
                    self._idle.add(conn)
                conn.settimeout(self.idle_timeout)
                line = b""
                try:
                    line = reader.readline(_MAX_LINE + 1)
                except (OSError, TimeoutError):
                    break
                finally:
                    with self._lock:  # idle to busy in one step, so shutdown never sees neither
                        self._idle.discard(conn)
                        if line:
                            self._busy += 1
                if not line:
                    break
                try:
                    conn.settimeout(30.0)
                    keep_alive = self._one_request(conn, reader, line)
                finally:
                    with self._lock:
                        self._busy -= 1
        except (OSError, TimeoutError):
            pass  # the client went away mid-request; nothing to answer
        finally:
            with contextlib.suppress(OSError):
                reader.close()
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _one_request(self, conn: socket.socket, reader: BinaryIO, line: bytes) -> bool:
        try:
            request, keep_alive = self._parse(conn, reader, line)
        except _BadRequestError as exc:
            self._send(
                conn, Response(exc.status, self.error_body(str(exc))), keep_alive=not exc.close
            )
            if exc.drain:
                self._discard(conn, reader, exc.drain)
            return not exc.close
        try:
            response = self.handler(request)
        except Exception:  # the handler maps known errors itself; this is a bug
            log.exception("unhandled error serving %s %s", request.method, request.path)
            response = Response(500, self.error_body("internal server error"))
        keep_alive = keep_alive and not self._stopping.is_set()
        self._send(conn, response, keep_alive=keep_alive)
        return keep_alive

    def _parse(self, conn: socket.socket, reader: BinaryIO, line: bytes) -> tuple[Request, bool]:
        if len(line) > _MAX_LINE:
            raise _BadRequestError(431, "request line too long", close=True)
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            raise _BadRequestError(400, "malformed HTTP request line", close=True) from None
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            raw = reader.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                raise _BadRequestError(431, "header line too long", close=True)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequestError(400, f"malformed header line {raw[:40]!r}", close=True)
            headers[name.strip().lower()] = value.strip()
        else:
            raise _BadRequestError(431, "too many header lines", close=True)
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadRequestError(
                411, "chunked request bodies are not supported; send Content-Length", close=True
            )
        length_text = headers.get("content-length", "0")
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise _BadRequestError(
                400, f"invalid Content-Length {length_text!r}", close=True
            ) from None
        if length > self.max_body_bytes:
            raise _BadRequestError(
                413,
                f"request body of {length} bytes is over the limit of {self.max_body_bytes} bytes",
                close=True,
                drain=0 if headers.get("expect", "").lower() == "100-continue" else length,
            )
        if length and headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = reader.read(length) if length else b""
        if len(body) != length:
            raise _BadRequestError(
                400, "request body is shorter than its Content-Length", close=True
            )
        path, _, query = target.partition("?")
        return Request(method, path, query, headers, body), keep_alive

    @staticmethod
    def _discard(conn: socket.socket, reader: BinaryIO, limit: int) -> None:
        """Read and drop part of a refused body (bounded in bytes and time).

        A client still sending the body then sees our answer instead of a connection reset.
        """
        conn.settimeout(1.0)
        with contextlib.suppress(OSError, TimeoutError):
            remaining = min(limit, _MAX_DISCARD)
            while remaining > 0:
                chunk = reader.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    @staticmethod
    def _send(conn: socket.socket, response: Response, *, keep_alive: bool) -> None:
        reason = _REASONS.get(response.status, "Unknown")
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in response.headers)
        if not keep_alive:
            head.append("Connection: close")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
