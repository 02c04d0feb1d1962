"""Run a regional relay under uvicorn (``edgefleet server --relay``)."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn

from edgefleet.server.relay.app import begin_relay_shutdown, create_relay_app
from edgefleet.server.relay.settings import RelaySettings
from edgefleet.server.run import GRACEFUL_SHUTDOWN_S, GracefulServer, listening_socket

__all__ = ["serve_relay"]


def serve_relay(settings: RelaySettings, announce: Callable[[str], None] = print) -> None:
    """Bind, announce the URL (the real port when 0 was asked) and relay until SIGINT/SIGTERM.

    On the signal, the long polls it holds open for its devices are answered at once (304), so
    it stops without waiting for them or cancelling them.

    Raises
    ------
    OSError
        The address cannot be bound.
    """
    sock = listening_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    tls = settings.tls_certfile is not None
    url = f"{'https' if tls else 'http'}://{settings.host}:{port}"
    app = create_relay_app(settings)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = GracefulServer(config, on_exit=lambda: begin_relay_shutdown(app))
    announce(f"edgefleet relay on {url} (region {settings.region}, upstream {settings.upstream})")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
