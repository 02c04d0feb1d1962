"""A userspace TCP proxy that makes a loopback or LAN path look like a WAN link.

Kernel ``netem`` needs root and is not available in containers, so ``edgefleet bench
--emulate rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%`` points the benchmark client at a
:class:`NetemProxy` instead of at the endpoint. Every accepted client connection gets one
upstream connection, and bytes are relayed both ways through a model of the link:

Delay
    Each chunk read from one side is released to the other side ``rtt/2`` plus a jitter draw
    later (see :class:`~edgefleet.bench.netem_spec.Emulation` for how the per-direction jitter
    is chosen so the *round trip* has the requested standard deviation). Negative one-way delays
    are truncated at zero. Bytes are never reordered: a chunk is released at the later of its
    own scheduled time and the release time of the chunk before it on the same connection.
Bandwidth
    One serializer per direction, shared by every connection of the proxy, as on a real access
    link: a chunk starts transmitting when the link is free and takes ``8 * len / bw`` seconds
    (a token bucket without burst allowance, like ``tc netem rate``); its delay starts after.
Loss
    TCP hides packet loss as retransmission delay, which a userspace proxy cannot reproduce
    faithfully. Instead, each chunk read from the client (a small request is usually one read)
    is lost with probability ``loss``, and a lost chunk *resets the connection*: both sockets
    are closed with ``SO_LINGER 0``, so the client sees ``ConnectionResetError`` and the
    benchmark counts a failed request.
Upstream failures
    If the upstream cannot be reached (refused, timeout) the client connection is reset the
    same way and counted in ``upstream_failures``; the proxy keeps serving.

The proxy runs an asyncio event loop in one background thread. asyncio was chosen over a
thread per connection because delayed release is naturally a timer (``loop.call_at``) on a
single clock, the shared bandwidth serializers need no locks when everything runs on one
thread, and the per-chunk cost stays at one callback (tens of microseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import struct
import threading
from collections import deque
from types import TracebackType
from typing import Literal, Self

from edgefleet.bench.netem_spec import Emulation, parse_emulation
from edgefleet.errors import ConfigurationError

__all__ = ["Emulation", "NetemProxy", "parse_emulation"]

_LINGER_RESET = struct.pack("ii", 1, 0)
_MIN_BUFFER = 1 << 20  # bytes held per direction before reading from the sender pauses
_UNLIMITED_BUFFER = 16 << 20  # the same, for a link with no bandwidth limit
_STOP_TIMEOUT_S = 5.0
_MAX_LEAD_S = 2e-3  # upper bound of the timer-lateness compensation
_DELAYS_KEPT = 10_000  # per direction, for :meth:`NetemProxy.delays`


class _Link:
    """The serializer of one direction, shared by every connection of a proxy."""

    __slots__ = ("bytes_per_s", "free_at")

    def __init__(self, bandwidth_bps: float | None) -> None:
        self.bytes_per_s = 0.0 if bandwidth_bps is None else bandwidth_bps / 8
        self.free_at = 0.0


class _Lead:
    """How early to arm release timers so that chunks leave on time on average.

    A timer fires late: the selector rounds its timeout up to whole milliseconds and the
    thread needs to be woken (0.1-0.5 ms on a busy VM). Timers are therefore armed ``s``
    seconds early and release every chunk due within ``s``, where ``s`` is a running mean of
    the observed lateness. The lateness is measured against the armed time, so ``s`` does not
    feed back into its own estimate.
    """

    __slots__ = ("s",)

    def __init__(self) -> None:
        self.s = 0.0

    def observe(self, late: float) -> None:
        late = min(max(late, 0.0), _MAX_LEAD_S)
        self.s += 0.05 * (late - self.s)


class _Side(asyncio.Protocol):
    """One of the two TCP connections of a proxied pair."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.inbound: _Pipe  # the pipe this side's received bytes enter
        self.outbound: _Pipe  # the pipe that writes to this side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.proxy._live += 1
        if self is self.conn.client:
            transport.pause_reading()  # nothing to relay to until the upstream answers
            self.conn.proxy._start_upstream(self.conn)

    def data_received(self, data: bytes) -> None:
        self.conn.on_data(self, data)

    def eof_received(self) -> bool:
        self.inbound.push(None)
        return True  # keep the write half open; the pipe forwards the EOF after its delay

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.conn.proxy._live -= 1
        self.conn.reset()  # a no-op when the proxy itself closed this side

    def pause_writing(self) -> None:
        self.outbound.set_dst_blocked(True)

    def resume_writing(self) -> None:
        self.outbound.set_dst_blocked(False)


class _Pipe:
    """One direction of one connection: delays, serializes and forwards chunks in order."""

    def __init__(self, conn: _Connection, src: _Side, dst: _Side, link: _Link, up: bool) -> None:
        proxy = conn.proxy
        self.conn, self.src, self.dst, self.link, self.up = conn, src, dst, link, up
        self.loop = asyncio.get_running_loop()
        self.delay_fn = proxy._one_way_delay
        self.delayed = proxy._has_delay
        self.queue: deque[tuple[float, bytes | None]] = deque()  # (release time, chunk | EOF)
        self.last_release = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.armed_for = 0.0  # loop time the timer was armed for
        self.lead = proxy._lead
        self.buffered = 0
        self.high_water = proxy._high_water
        self.src_paused = self.dst_blocked = self.eof_done = False
        src.inbound = dst.outbound = self

    def push(self, data: bytes | None) -> None:
        """Schedule ``data`` (None for EOF) for release to ``dst``."""
        now = release = self.loop.time()
        link = self.link
        if link.bytes_per_s and data:
            start = link.free_at if link.free_at > now else now
            release = link.free_at = start + len(data) / link.bytes_per_s
        if self.delayed:
            release += self.delay_fn()
        if release < self.last_release:
            release = self.last_release
        self.last_release = release
        self.conn.proxy._record_delay(self.up, release - now)
        if release <= now and not self.queue:
            self._deliver(data)  # fast path: nothing to wait for
            return
        self.queue.append((release, data))
        if data:
            self.buffered += len(data)
            if self.buffered > self.high_water:
                self._update_src()
        if self.timer is None:
            self._arm(release)

    def _arm(self, release: float) -> None:
        self.armed_for = release - self.lead.s
        self.timer = self.loop.call_at(self.armed_for, self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        self.lead.observe(now - self.armed_for)
        queue, deadline = self.queue, now + self.lead.s
        while queue and queue[0][0] <= deadline:
            data = queue.popleft()[1]
            if data:
                self.buffered -= len(data)
            self._deliver(data)
            if self.conn.closed:
                return
        if queue:
            self._arm(queue[0][0])
        self._update_src()

    def _deliver(self, data: bytes | None) -> None:
        transport = self.dst.transport
        if transport is None:
            return
        if data is None:
            self.eof_done = True
            if transport.can_write_eof():
                transport.write_eof()
            self.conn.on_eof_delivered()
            return
        self.conn.proxy._count_bytes(self.up, len(data))  # first: the peer may look at once
        transport.write(data)

    def set_dst_blocked(self, blocked: bool) -> None:
        self.dst_blocked = blocked
        self._update_src()

    def _update_src(self) -> None:
        pause = self.dst_blocked or self.buffered > self.high_water
        transport = self.src.transport
        if pause != self.src_paused and transport is not None:
            self.src_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class _Connection:
    """A client connection, its upstream connection and the two pipes between them."""

    def __init__(self, proxy: NetemProxy) -> None:
        self.proxy = proxy
        self.closed = False
        self.client = _Side(self)
        self.upstream = _Side(self)
        self.c2s = _Pipe(self, self.client, self.upstream, proxy._uplink, up=True)
        self.s2c = _Pipe(self, self.upstream, self.client, proxy._downlink, up=False)

    def on_data(self, side: _Side, data: bytes) -> None:
        if side is self.client and self.proxy._lost():
            self.proxy._stats["resets"] += 1
            self.reset()
            return
        side.inbound.push(data)

    def on_eof_delivered(self) -> None:
        if self.c2s.eof_done and self.s2c.eof_done:
            self.closed = True  # both directions finished cleanly: close, flushing buffers
            self.proxy._conns.discard(self)
            for side in (self.client, self.upstream):
                if side.transport is not None:
                    side.transport.close()

    def reset(self) -> None:
        """Abort both sides with RST (``SO_LINGER 0``); pending chunks are dropped."""
        if self.closed:
            return
        self.closed = True
        self.proxy._conns.discard(self)
        self.c2s.cancel()
        self.s2c.cancel()
        for side in (self.client, self.upstream):
            transport = side.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                transport.abort()


class NetemProxy:
    """Relay TCP connections to ``upstream_host:upstream_port`` through an emulated WAN link.

    Parameters
    ----------
    upstream_host, upstream_port
        The real endpoint.
    emulation
        The link to emulate, or a spec string for :func:`parse_emulation`.
    listen_host, listen_port
        Where the proxy listens; port 0 picks a free port (read it from :attr:`port`).
    seed
        Seed for the jitter and loss draws, for reproducible runs (one stream each, so the
        loss pattern does not depend on the jitter setting).
    connect_timeout_s
        How long to wait for the upstream before resetting the client connection.

    Notes
    -----
    A proxy is single-use: :meth:`start` once, :meth:`stop` once (again is a no-op); ``with``
    does both. :meth:`stop` resets the connections still open. Each direction of a connection
    buffers up to twice the bandwidth-delay product (at least 1 MiB; 16 MiB without a rate
    limit) before it stops reading from the sender, so TCP flow control reaches the sender.

    Examples
    --------
    >>> with NetemProxy("127.0.0.1", 9, "rtt=20ms,bw=10mbit", seed=1) as proxy:
    ...     proxy.address == f"127.0.0.1:{proxy.port}"
    True
    >>> proxy.stats()["connections"]
    0
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        emulation: Emulation | str,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if isinstance(emulation, str):
            emulation = parse_emulation(emulation)
        self.emulation = emulation
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.listen_host, self._listen_port = listen_host, listen_port
        self.connect_timeout_s = connect_timeout_s
        self._delay_rng = random.Random(None if seed is None else f"{seed}/delay")
        self._loss_rng = random.Random(None if seed is None else f"{seed}/loss")
        self._half_rtt = emulation.rtt_s / 2
        self._sigma = emulation.jitter_s / math.sqrt(2)
        self._uniform = emulation.jitter_distribution == "uniform"
        self._has_delay = bool(emulation.rtt_s or emulation.jitter_s)
        if emulation.bandwidth_bps is None:
            self._high_water = _UNLIMITED_BUFFER
        else:  # room for at least twice the bandwidth-delay product
            window = emulation.rtt_s + 4 * emulation.jitter_s
            self._high_water = max(_MIN_BUFFER, int(emulation.bandwidth_bps / 8 * window * 2))
        self._lead = _Lead()
        self._uplink = _Link(emulation.bandwidth_bps)
        self._downlink = _Link(emulation.bandwidth_bps)
        self._stats = dict.fromkeys(
            ("connections", "bytes_up", "bytes_down", "resets", "upstream_failures"), 0
        )
        self._delays: dict[bool, list[float]] = {True: [], False: []}  # up: client to upstream
        self._conns: set[_Connection] = set()
        self._live = 0  # open transports, both sides
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._startup_error: OSError | None = None
        self._port: int | None = None

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen and start relaying in a background thread; returns self.

        Raises
        ------
        ConfigurationError
            If the listen address cannot be bound (port in use, unknown host).
        """
        if self._thread is not None:
            raise RuntimeError("NetemProxy.start() was already called")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="edgefleet-netem-proxy", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            where = f"{self.listen_host}:{self._listen_port}"
            raise ConfigurationError(
                f"network emulation proxy cannot listen on {where}: {self._startup_error}"
            )
        if self._port is None:  # pragma: no cover - the thread died; its exception is reported
            raise RuntimeError("network emulation proxy thread failed to start")
        return self

    def stop(self) -> None:
        """Close the listener, reset every open connection and join the thread (idempotent)."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stopping.set)
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():  # pragma: no cover - would be a bug in the shutdown sequence
            raise RuntimeError("network emulation proxy thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("NetemProxy is not started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` to give the client instead of the endpoint's (IPv6 in brackets)."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.port}"

    def stats(self) -> dict[str, int]:
        """Counters since start.

        ``connections`` accepted, ``active`` still open, ``bytes_up`` (client to upstream) and
        ``bytes_down`` delivered, ``resets`` caused by emulated loss, ``upstream_failures``
        (client connections reset because the upstream was unreachable). Read from another
        thread, the counters are each exact but not one atomic snapshot.
        """
        return {**self._stats, "active": len(self._conns)}

    def delays(self, direction: Literal["up", "down"]) -> list[float]:
        """How long the proxy held each recent chunk (and EOF) of ``direction``, in seconds.

        The scheduled hold of each of the last 10,000 chunks of that direction, in arrival
        order: its emulated one-way delay (rtt/2 and the jitter draw), plus its wait for the
        shared link (bandwidth) and for the chunk before it (order). ``up`` is client to
        upstream. This is the proxy's own account of what it applied, free of the scheduling
        noise of a measured round trip; a chunk leaves at most 2 ms before its time (timer
        lateness compensation) and later when the machine is busy.
        """
        return self._delays[direction == "up"][-_DELAYS_KEPT:]

    # -- event loop thread ---------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(ready))
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await loop.create_server(
                self._accept, self.listen_host, self._listen_port, backlog=512
            )
        except OSError as exc:
            self._startup_error = exc
            return
        self._port = server.sockets[0].getsockname()[1]
        connecting = self._connecting
        ready.set()
        await self._stopping.wait()
        server.close()
        for task in connecting:
            task.cancel()
        await asyncio.gather(*connecting, return_exceptions=True)
        for conn in list(self._conns):
            conn.reset()
        await server.wait_closed()
        deadline = loop.time() + 1.0
        while self._live and loop.time() < deadline:  # let connection_lost callbacks run
            await asyncio.sleep(0)

    def _accept(self) -> _Side:
        conn = _Connection(self)
        self._conns.add(conn)
        self._stats["connections"] += 1
        return conn.client

    def _start_upstream(self, conn: _Connection) -> None:
        task = asyncio.get_running_loop().create_task(self._connect_upstream(conn))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_upstream(self, conn: _Connection) -> None:
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(
                    lambda: conn.upstream, self.upstream_host, self.upstream_port
                ),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError):
            self._stats["upstream_failures"] += 1
            conn.reset()
            return
        client = conn.client.transport
        if conn.closed or client is None:  # the client went away while we connected
            if conn.upstream.transport is not None:
                conn.upstream.transport.abort()
            return
        client.resume_reading()

    def _one_way_delay(self) -> float:
        if self._uniform:
            spread = self._sigma * math.sqrt(3)
            delay = self._half_rtt + self._delay_rng.uniform(-spread, spread)
        else:
            delay = self._delay_rng.gauss(self._half_rtt, self._sigma)
        return delay if delay > 0 else 0.0

    def _lost(self) -> bool:
        loss = self.emulation.loss
        return loss > 0 and self._loss_rng.random() < loss

    def _record_delay(self, up: bool, held_s: float) -> None:
        kept = self._delays[up]
        kept.append(held_s)
        if len(kept) > 2 * _DELAYS_KEPT:
            del kept[:_DELAYS_KEPT]

    def _count_bytes(self, up: bool, n: int) -> None:
        self._stats["bytes_up" if up else "bytes_down"] += n

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        upstream = f"{self.upstream_host}:{self.upstream_port}"
        return f"NetemProxy({where} -> {upstream}, {self.emulation.describe()})"
