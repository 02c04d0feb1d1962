"""A TCP proxy that injects network faults between an agent and its control plane.

Each accepted connection draws one fate from a seeded random generator: passed through
unchanged, passed through with a delay on every chunk, reset at once (RST, nothing forwarded),
or truncated (the answer is cut after a random number of bytes, then the connection is reset).
The draws are reproducible for a given seed and order of connections.

>>> from edgefleet.testing.faulty_proxy import FaultyProxy  # doctest: +SKIP
>>> with FaultyProxy("127.0.0.1", 8443, seed=7, reset=0.2) as proxy:  # doctest: +SKIP
...     print(proxy.url)
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

__all__ = ["Faults", "FaultyProxy"]

_CHUNK = 65536


@dataclass(frozen=True)
class Faults:
    """Probabilities of each fate of a connection (the rest pass through untouched)."""

    delay: float = 0.2
    reset: float = 0.1
    truncate: float = 0.1
    delay_s: float = 0.2
    """Delay added before each forwarded chunk of a delayed connection."""


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultyProxy:
    """A threaded TCP proxy on ``127.0.0.1`` forwarding to ``upstream_host:upstream_port``."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = faults or Faults()
        self.fates: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        """Start accepting connections in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting; open connections end on their own."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _draw(self) -> tuple[str, int]:
        with self._lock:
            roll = self._random.random()
            cut = self._random.randint(1, 2048)
            f = self.faults
            if roll < f.reset:
                fate = "reset"
            elif roll < f.reset + f.truncate:
                fate = "truncate"
            elif roll < f.reset + f.truncate + f.delay:
                fate = "delay"
            else:
                fate = "pass"
            self.fates[fate] += 1
        return fate, cut

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            fate, cut = self._draw()
            if fate == "reset":
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client, fate, cut), daemon=True).start()

    def _serve(self, client: socket.socket, fate: str, cut: int) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        delay = self.faults.delay_s if fate == "delay" else 0.0
        budget = cut if fate == "truncate" else -1  # bytes of the answer still let through
        try:
            while not self._stopped.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.5)
                for sock in ready:
                    data = sock.recv(_CHUNK)
                    if not data:
                        return
                    if delay:
                        time.sleep(delay)
                    if sock is client:
                        upstream.sendall(data)
                        continue
                    if budget >= 0:
                        data = data[:budget]
                        budget -= len(data)
                        client.sendall(data)
                        if budget <= 0:
                            return
                        continue
                    client.sendall(data)
        except OSError:
            return
        finally:
            if fate == "truncate":
                _reset(client)
            else:
                client.close()
            upstream.close()
