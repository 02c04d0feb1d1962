"""A tiny loopback HTTP server for the device API's TUF routes, for tests of the agent side.

It serves ``/api/device/v1/tuf/metadata/<file>`` from a
:class:`~edgefleet.server.registry.tuf_repo.MetadataStore` and ``/api/device/v1/tuf/targets/<file>``
from a dict of bytes (``Range`` honoured), checks a bearer token, records every request, and can
cut a target response short to drive resumable downloads. Standard library only.

>>> from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore
>>> import httpx
>>> with TufTestServer(InMemoryMetadataStore()) as server:
...     server.add_target_file("models/m/r1.onnx", b"abc")[:8]
...     httpx.get(server.base_url + "/tuf/metadata/root.json").status_code
'ba7816bf'
401
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.server.registry.tuf_repo import MetadataStore, TufRepository

__all__ = ["RecordedRequest", "TufTestServer"]

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered: path (after the API prefix), Range header, status."""

    path: str
    range: str | None
    status: int


class TufTestServer:
    """Serve TUF metadata and target files on ``127.0.0.1`` (a free port) while in a ``with``.

    Parameters
    ----------
    store
        Metadata, read on every request; :attr:`metadata_overrides` replaces single files.
    targets
        Target files by served name (``<dir>/<sha256>.<name>``); see :meth:`add_target_file`.
    token
        The bearer credential every request must carry; None turns the check off.
    honour_range
        When False, ``Range`` is ignored and whole files are sent with 200.
    """

    def __init__(
        self,
        store: MetadataStore,
        targets: dict[str, bytes] | None = None,
        *,
        token: str | None = "device-secret",
        honour_range: bool = True,
    ) -> None:
        self.store = store
        self.targets: dict[str, bytes] = dict(targets or {})
        self.token = token
        self.honour_range = honour_range
        self.requests: list[RecordedRequest] = []
        self.metadata_overrides: dict[str, bytes] = {}
        """Served instead of the store's file of the same name: an attacker's mirror."""
        self._cuts: list[int] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/device/v1``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it in a with block")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{API_PREFIX}"

    def add_target_file(self, path: str, data: bytes) -> str:
        """Serve ``data`` under the consistent-snapshot name of target ``path``; its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        self.targets[TufRepository.target_file_name(path, sha256)] = data
        return sha256

    def publish(
        self,
        repository: TufRepository,
        path: str,
        data: bytes,
        custom: dict[str, Any],
        now: float,
    ) -> str:
        """Serve ``data`` as target ``path`` and sign it into ``repository``; its sha256."""
        sha256 = self.add_target_file(path, data)
        repository.add_target(path, len(data), sha256, custom, now)
        return sha256

    def cut_after(self, nbytes: int, *, times: int = 1) -> None:
        """Close the connection after ``nbytes`` of body on the next ``times`` target responses."""
        with self._lock:
            self._cuts.extend([nbytes] * times)

    def target_requests(self) -> list[RecordedRequest]:
        """The recorded requests for target files."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/tuf/targets/")]

    def __enter__(self) -> TufTestServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = self._thread = None

    def _record(self, path: str, range_header: str | None, status: int) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, range_header, status))

    def _next_cut(self) -> int | None:
        with self._lock:
            return self._cuts.pop(0) if self._cuts else None


def _handler_for(server: TufTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            rel = path.removeprefix(API_PREFIX)
            range_header = self.headers.get("Range")
            if server.token is not None and (
                self.headers.get("Authorization") != f"Bearer {server.token}"
            ):
                self._send(rel, range_header, 401, b'{"error": "auth.denied"}')
            elif rel.startswith("/tuf/metadata/"):
                name = rel.removeprefix("/tuf/metadata/")
                body = server.metadata_overrides.get(name) or server.store.get_metadata(name)
                self._send(rel, range_header, 404 if body is None else 200, body or b"")
            elif rel.startswith("/tuf/targets/"):
                data = server.targets.get(rel.removeprefix("/tuf/targets/"))
                if data is None:
                    self._send(rel, range_header, 404, b"")
                else:
                    self._send_target(rel, range_header, data)
            else:
                self._send(rel, range_header, 404, b"")

        def _send_target(self, rel: str, range_header: str | None, data: bytes) -> None:
            match = _RANGE.match(range_header or "") if server.honour_range else None
            if match is None:
                self._send(rel, range_header, 200, data, cut=server._next_cut())
                return
            start = int(match.group(1))
            end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
            if start >= len(data) or end < start:
                headers = {"Content-Range": f"bytes */{len(data)}"}
                self._send(rel, range_header, 416, b"", headers=headers)
                return
            headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
            body = data[start : end + 1]
            self._send(rel, range_header, 206, body, headers=headers, cut=server._next_cut())

        def _send(
            self,
            rel: str,
            range_header: str | None,
            status: int,
            body: bytes,
            *,
            headers: dict[str, str] | None = None,
            cut: int | None = None,
        ) -> None:
            server._record(rel, range_header, status)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
            self.close_connection = True

    return Handler
