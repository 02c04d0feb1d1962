"""Run ``edgefleet serve``: load, listen, and shut down gracefully on SIGTERM or Ctrl-C.

The kernel may deliver SIGTERM to any thread (ONNX Runtime's pool, OpenBLAS's, a connection
thread), and a Python handler only runs when the main thread executes bytecode, which a main
thread blocked in ``accept`` never does. So the accept loop runs in a thread, and the main
thread sleeps on a pipe registered with :func:`signal.set_wakeup_fd`: whichever thread catches
the signal, its number is written to the pipe and the main thread wakes at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from edgefleet.runtime import ModelRepository, load_any
from edgefleet.runtime.oip import make_server
from edgefleet.runtime.oip.settings import ServeSettings

__all__ = ["serve"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ACCEPT_LOOP_ENDED = 0  # written to the wake-up pipe by the accept thread; no signal is 0


def _noted(signum: int, frame: FrameType | None) -> None:
    """Keep the default action away; the signal number reaches the wake-up pipe."""


def serve(settings: ServeSettings, announce: Callable[[str], None] = print) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests finish before returning.

    A second SIGTERM or Ctrl-C during the graceful shutdown stops the process at once.
    """
    repository = ModelRepository()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous_handlers = {sig: signal.signal(sig, _noted) for sig in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    try:
        servable = load_any(settings.model_path, **settings.load_options())
        repository.add(servable)
        server, service = make_server(
            repository, settings.host, settings.port, max_body_bytes=settings.max_body_bytes
        )
        failure: list[BaseException] = []

        def accept_loop() -> None:
            try:
                server.serve_forever()
            except BaseException as exc:  # re-raised by the main thread
                failure.append(exc)
            finally:
                os.write(wake_write, bytes([_ACCEPT_LOOP_ENDED]))

        thread = threading.Thread(target=accept_loop, name="edgefleet-accept", daemon=True)
        thread.start()
        providers = getattr(servable, "providers", None) or ["pipeline"]
        announce(
            f"serving {servable.name!r} version {servable.version} ({servable.platform}, "
            f"{providers[0]}) at {server.url}/v2/models/{servable.name} - Ctrl-C or SIGTERM stops"
        )
        while not set(os.read(wake_read, 64)) & {*STOP_SIGNALS, _ACCEPT_LOOP_ENDED}:
            pass  # another signal woke us
        service.ready = False
        for sig in STOP_SIGNALS:  # a second signal ends the process without waiting
            signal.signal(sig, signal.SIG_DFL)
        server.shutdown(settings.shutdown_grace_seconds)
        thread.join(timeout=5)
        if failure:
            raise failure[0]
    finally:
        repository.close()
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous_handlers.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)
        os.close(wake_read)
        os.close(wake_write)
    announce("stopped")
