"""Run the control plane under uvicorn (``edgefleet server --data-dir D``)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from edgefleet.server.app import begin_shutdown, create_app
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.settings import ServerSettings

__all__ = ["GRACEFUL_SHUTDOWN_S", "GracefulServer", "listening_socket", "serve"]

GRACEFUL_SHUTDOWN_S = 10
"""Longest a server or relay waits for requests in flight once asked to stop (held long polls
answer at once)."""


class GracefulServer(uvicorn.Server):
    """uvicorn's server that also wakes held long polls when a signal asks it to stop.

    ``on_exit`` runs first in the signal handler (it must be safe there: set a flag, schedule
    a wake-up with ``call_soon_threadsafe``); the control plane and the relay both use it.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: answer the polls, then stop as uvicorn does."""
        self._on_exit()
        super().handle_exit(sig, frame)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port) and listening.

    Raises
    ------
    OSError
        The address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it a body written after its headers waits for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)  # connections queue until the app has started
    return sock


def serve(settings: ServerSettings, announce: Callable[[str], None] = print) -> None:
    """Bind, announce the URL once ready (the real port when 0 was asked) and serve.

    Runs until SIGINT or SIGTERM.
    """
    online = RepositoryKeys.root_key_online(settings.keys_dir) or (
        settings.root_key_path is not None
        and settings.root_key_path.resolve().is_relative_to(settings.data_dir.resolve())
        and settings.root_key_path.exists()
    )
    if online:
        announce(
            "warning: the TUF root key is online in the data dir; move it offline "
            "(it is needed only to rotate keys) and keep it safe"
        )
    sock = listening_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    tls = settings.tls_certfile is not None
    scheme = "https" if tls else "http"
    url = f"{scheme}://{settings.host}:{port}"

    def ready() -> None:
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall every request for ~100 ms now and then.
        gc.collect()
        gc.freeze()
        announce(f"edgefleet server on {url} (data dir {settings.data_dir})")

    app = create_app(settings, on_ready=ready)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # client addresses are not used; skips a middleware per request
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = GracefulServer(config, on_exit=lambda: begin_shutdown(app))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
