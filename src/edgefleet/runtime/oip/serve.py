"""Run ``edgefleet serve``: load, listen, and shut down gracefully on SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from edgefleet.runtime import ModelRepository, load_any
from edgefleet.runtime.oip import make_server
from edgefleet.runtime.oip.settings import ServeSettings

__all__ = ["serve"]


def serve(settings: ServeSettings, announce: Callable[[str], None] = print) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests finish before returning."""
    servable = load_any(settings.model_path, **settings.load_options())
    repository = ModelRepository()
    repository.add(servable)
    server, service = make_server(
        repository, settings.host, settings.port, max_body_bytes=settings.max_body_bytes
    )
    providers = getattr(servable, "providers", None) or ["pipeline"]
    announce(
        f"serving {servable.name!r} version {servable.version} ({servable.platform}, "
        f"{providers[0]}) at {server.url}/v2/models/{servable.name} - Ctrl-C or SIGTERM stops"
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        service.ready = False
        threading.Thread(
            target=server.shutdown, args=(settings.shutdown_grace_seconds,), daemon=True
        ).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
        server.shutdown(settings.shutdown_grace_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        repository.close()
    announce("stopped")
