"""The network emulation proxy against real TCP servers on loopback.

What the proxy applied is read from its own account (:meth:`NetemProxy.delays`: the hold of
every chunk), which scheduling noise cannot disturb. Measured round trips are only checked
from below: a busy machine can make a round trip slower than emulated, never faster, so
``rtt=40ms`` must make every measured round trip at least 40 ms (less the timers' early
release of at most 2 ms per direction). No test bounds a duration from above.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edgefleet.bench.netem import NetemProxy
from edgefleet.errors import ConfigurationError

PING = b"p" * 64
EARLY_S = 0.002  # a chunk may leave this much before its time (the timers' lateness compensation)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    expected = 0  # bytes the sink handler waits for before answering
    accepted = 0  # connections the echo handler has taken


class _Echo(socketserver.BaseRequestHandler):
    """Echo every read back until EOF, then close."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert isinstance(self.server, _Server)
        self.server.accepted += 1
        with contextlib.suppress(OSError):  # the proxy resets connections on purpose
            while data := sock.recv(65536):
                sock.sendall(data)


class _Sink(socketserver.BaseRequestHandler):
    """Read ``server.expected`` bytes, then answer ``ok``."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        assert isinstance(self.server, _Server)
        received = 0
        with contextlib.suppress(OSError):
            while received < self.server.expected and (data := sock.recv(65536)):
                received += len(data)
            sock.sendall(b"ok")


@contextlib.contextmanager
def serving(handler: type[socketserver.BaseRequestHandler], port: int = 0) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def echo() -> Iterator[int]:
    with serving(_Echo) as server:
        yield server.server_address[1]


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def ping_times(port: int, count: int) -> list[float]:
    """Round-trip times of ``count`` ping-pongs on one connection (after one warm-up)."""
    with connect(port) as sock:
        times = []
        for _ in range(count + 1):
            start = time.perf_counter()
            sock.sendall(PING)
            assert recv_exactly(sock, len(PING)) == PING
            times.append(time.perf_counter() - start)
    return times[1:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def round_trips(proxy: NetemProxy) -> list[float]:
    """The round-trip delay the proxy scheduled for each ping-pong (EOFs left out)."""
    up, down = proxy.delays("up"), proxy.delays("down")
    return [a + b for a, b in zip(up, down, strict=False)]


def test_rtt_adds_its_value_to_every_round_trip(echo: int) -> None:
    with NetemProxy("127.0.0.1", echo, "rtt=40ms") as proxy:
        measured = ping_times(proxy.port, 10)
    assert len(proxy.delays("up")) >= 11  # every ping, the warm-up one included
    for direction in ("up", "down"):
        assert proxy.delays(direction) == pytest.approx([0.020] * len(proxy.delays(direction)))
    assert min(measured) >= 0.040 - 2 * EARLY_S


def test_jitter_is_the_standard_deviation_of_the_added_round_trip(echo: int) -> None:
    with NetemProxy("127.0.0.1", echo, "rtt=20ms,jitter=6ms", seed=7) as proxy:
        measured = ping_times(proxy.port, 200)
    scheduled = round_trips(proxy)[1:201]  # the warm-up ping left out, as in ping_times
    assert statistics.stdev(scheduled) == pytest.approx(0.006, rel=0.2)
    assert statistics.mean(scheduled) == pytest.approx(0.020, rel=0.1)
    for took, planned in zip(measured, scheduled, strict=True):
        assert took >= planned - 2 * EARLY_S


def test_uniform_jitter_is_bounded_at_sqrt_3_standard_deviations(echo: int) -> None:
    with NetemProxy("127.0.0.1", echo, "rtt=20ms,jitter=6ms,dist=uniform", seed=2) as proxy:
        measured = ping_times(proxy.port, 100)
    one_way_bound = 0.006 / 2**0.5 * 3**0.5  # each direction: 10 ms +- 7.3 ms
    held = proxy.delays("up") + proxy.delays("down")
    assert all(abs(delay - 0.010) <= one_way_bound + 1e-9 for delay in held)
    assert statistics.stdev(held) == pytest.approx(one_way_bound / 3**0.5, rel=0.2)
    for took, planned in zip(measured, round_trips(proxy)[1:], strict=False):
        assert took >= planned - 2 * EARLY_S


class _Greeter(socketserver.BaseRequestHandler):
    """Send a greeting and close at once, as a server ending a keep-alive connection does."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.sendall(b"hello, bye")


def test_an_upstream_that_closes_first_is_seen_as_its_data_then_eof() -> None:
    with (
        serving(_Greeter) as server,
        NetemProxy("127.0.0.1", server.server_address[1], "rtt=10ms,jitter=2ms") as proxy,
        connect(proxy.port) as sock,
    ):
        assert recv_exactly(sock, 10) == b"hello, bye"
        assert sock.recv(10) == b""
        sock.close()
        # both directions finished: the pair is closed
        wait_until(lambda: proxy.stats()["active"] == 0, "the proxied pair is closed")


def test_bandwidth_serializes_the_bytes_at_the_link_rate() -> None:
    payload = b"b" * (256 * 1024)  # 2,097,152 bits: 0.262 s at 8 Mbit/s
    link_s = len(payload) * 8 / 8e6
    with (
        serving(_Sink) as server,
        NetemProxy("127.0.0.1", server.server_address[1], "bw=8mbit") as proxy,
    ):
        server.expected = len(payload)
        with connect(proxy.port) as sock:
            start = time.perf_counter()
            sock.sendall(payload)
            assert recv_exactly(sock, 2) == b"ok"
            elapsed = time.perf_counter() - start
        assert proxy.stats()["bytes_up"] == len(payload)
    assert elapsed >= link_s - EARLY_S  # the last byte cannot leave before the link carried all
    # no chunk waited for the link longer than the whole payload takes on it
    assert max(proxy.delays("up")) <= link_s + 1e-9


def test_jitter_never_reorders_or_alters_bytes_and_half_close_is_relayed(echo: int) -> None:
    records = [f"{i:06d}:".encode() + bytes([i % 251]) * 90 + b"\n" for i in range(300)]
    with NetemProxy("127.0.0.1", echo, "rtt=4ms,jitter=20ms", seed=1) as proxy:
        with connect(proxy.port) as sock:
            for record in records:
                sock.sendall(record)
                time.sleep(0.0005)  # separate reads, so each gets its own delay draw
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):  # EOF arrives only after every byte
                received += chunk
        stats = proxy.stats()
    assert received == b"".join(records)
    assert stats["bytes_up"] == stats["bytes_down"] == len(received)
    assert len(set(proxy.delays("up"))) >= 10  # many chunks, each held for its own draw


def test_loss_100_percent_resets_every_connection(echo: int) -> None:
    with NetemProxy("127.0.0.1", echo, "loss=100%") as proxy:
        for _ in range(5):
            with connect(proxy.port) as sock:
                sock.sendall(PING)
                with pytest.raises(ConnectionResetError):
                    sock.recv(1024)
        stats = proxy.stats()
    assert (stats["connections"], stats["resets"], stats["bytes_up"]) == (5, 5, 0)


def outcomes(port: int, spec: str, seed: int, connections: int) -> list[bool]:
    """For each of ``connections`` one-request connections: was it reset?"""
    reset = []
    with NetemProxy("127.0.0.1", port, spec, seed=seed) as proxy:
        for _ in range(connections):
            with connect(proxy.port) as sock:
                sock.sendall(PING)
                try:
                    reset.append(recv_exactly(sock, len(PING)) != PING)
                except ConnectionResetError:
                    reset.append(True)
        assert proxy.stats()["resets"] == sum(reset)
    return reset


def test_loss_0_never_resets(echo: int) -> None:
    assert not any(outcomes(echo, "loss=0%", seed=1, connections=30))


def test_seeded_loss_resets_about_that_share_of_requests_reproducibly(echo: int) -> None:
    first = outcomes(echo, "loss=30%", seed=3, connections=100)
    assert 15 <= sum(first) <= 45
    assert outcomes(echo, "loss=30%", seed=3, connections=100) == first


def test_an_unreachable_upstream_resets_the_client_and_the_proxy_keeps_serving() -> None:
    port = free_port()
    with NetemProxy("127.0.0.1", port, "rtt=2ms") as proxy:
        # the reset can reach a loaded machine's client before its connect() has returned
        with pytest.raises(ConnectionResetError), connect(proxy.port) as sock:
            sock.recv(1024)
        assert proxy.stats()["upstream_failures"] == 1
        with serving(_Echo, port=port):
            assert len(ping_times(proxy.port, 3)) == 3
        stats = proxy.stats()
    assert (stats["connections"], stats["upstream_failures"]) == (2, 1)


def test_stop_with_open_connections_drops_what_is_delayed_and_leaves_nothing_behind() -> None:
    with serving(_Echo) as server:
        proxy = NetemProxy("127.0.0.1", server.server_address[1], "rtt=600s").start()
        clients = [connect(proxy.port) for _ in range(3)]
        try:
            wait_until(lambda: server.accepted == 3, "the upstream connections are open")
            for sock in clients:
                sock.sendall(PING)  # held for 300 s: still in the proxy's delay queue at stop
            wait_until(lambda: len(proxy.delays("up")) == 3, "the proxy holds the three pings")
            proxy.stop()  # raises if the proxy's thread has not finished within 5 s
            for sock in clients:
                with pytest.raises(ConnectionResetError):
                    sock.recv(1024)
        finally:
            for sock in clients:
                sock.close()
    stats = proxy.stats()
    assert (stats["active"], stats["bytes_up"]) == (0, 0)  # dropped, not waited out
    assert not [t for t in threading.enumerate() if t.name == "edgefleet-netem-proxy"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    proxy.stop()  # idempotent


def test_a_listen_port_in_use_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = NetemProxy("127.0.0.1", 9, "rtt=1ms", listen_port=taken.getsockname()[1])
        with pytest.raises(ConfigurationError, match=r"cannot listen on 127\.0\.0\.1:"):
            proxy.start()
    assert not [t for t in threading.enumerate() if t.name == "edgefleet-netem-proxy"]
