"""Run a regional relay under uvicorn (``edgefleet server --relay``)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from edgefleet.server.relay.app import create_relay_app
from edgefleet.server.relay.settings import RelaySettings

__all__ = ["serve_relay"]


def serve_relay(settings: RelaySettings, announce: Callable[[str], None] = print) -> None:
    """Bind, announce the URL (the real port when 0 was asked) and relay until SIGINT/SIGTERM.

    Raises
    ------
    OSError
        The address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    port = sock.getsockname()[1]
    tls = settings.tls_certfile is not None
    url = f"{'https' if tls else 'http'}://{settings.host}:{port}"
    config = uvicorn.Config(
        create_relay_app(settings),
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    announce(f"edgefleet relay on {url} (region {settings.region}, upstream {settings.upstream})")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
