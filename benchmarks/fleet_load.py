"""Fleet load: how many simulated devices one `edgefleet server` process serves on this machine.

Devices are lightweight asyncio clients in this process, each with its own device credential,
speaking device API v1 to ONE `edgefleet server` subprocess over loopback. Before anything is
measured, the script pushes the digits model, deploys it to every device (so desired states are
real signed ones), enrols the devices (concurrently, bounded) and fetches each device's desired
state once to learn its ETag. Then, for a warm-up that is discarded and a measured period, every
device works at an agent's rates, each schedule with a random phase offset:

- desired-state poll every 10 s with ``If-None-Match`` and no long-poll wait (304 expected),
- heartbeat every 30 s with an inventory body,
- telemetry upload every 60 s: one window holding a real ``TelemetrySnapshot`` of a few hundred
  latencies, with fresh window and batch ids.

The generator is open-loop: requests are sent at their scheduled times whatever the server's
pace, and each latency is measured from the scheduled send time, so queueing in a slow server
(or in the generator) shows up instead of being hidden (coordinated omission). Errors are
non-2xx answers (other than the expected 304), timeouts and connection errors.

Fleet sizes are tried in increasing order (``--devices``), enrolling only the new devices at
each step, and a backend stops at the first size that fails: any error, or a p99 of any request
kind at or above ``--p99-ms``. Backends: SQLite (the data dir's default database) and
PostgreSQL (a throwaway cluster from ``edgefleet.testing.postgres``, passed to the server as
``EDGEFLEET_DATABASE_URL``). Target: 5,000 devices polling every 10 s with p99 < 200 ms and no
errors, on both.

The generator shares the machine with the server (and PostgreSQL), so the CPU time of each
(from /proc) is printed next to the figures as a percentage of one core, and as CPU
milliseconds per request: "gen" is this process, "srv" the server process, "pg" the PostgreSQL
processes, "oth" anything else running on the machine (more than a few percent means the
figures are disturbed). "lag p99" is how late the generator started requests against their
schedule; when it is large the generator, not the server, is the bottleneck. The default client
is a minimal HTTP/1.1 client on asyncio protocols with one shared keep-alive pool; ``--client
httpx`` uses httpx.AsyncClient instead, which costs about eight times the generator CPU per
request (about 4 ms against 0.5 ms on a 2-core VM) and falls seconds behind a schedule of
150 requests per second.

Usage: python benchmarks/fleet_load.py [--quick] [--devices 1000,2500,5000,7500,10000]
       [--backends sqlite,postgres] [--duration 60] [--client raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from edgefleet.protocol.v1 import (
    API_PREFIX,
    ActiveModel,
    EnrollRequest,
    Heartbeat,
    Inventory,
    SignedDesiredState,
)
from edgefleet.telemetry import TelemetrySnapshot
from edgefleet.testing.fleet import ServerProcess
from edgefleet.testing.models import build_digits_classifier

TARGET = "target: 5,000 devices, p99 < 200 ms for every request kind, no errors (each backend)"
MODEL = "digits"
VERSION = "1.0"
KINDS = ("poll", "heartbeat", "telemetry")
PERIODS = (10.0, 30.0, 60.0)  # seconds, in the order of KINDS
PATHS = tuple(f"{API_PREFIX}/{p}" for p in ("desired-state", "heartbeat", "telemetry"))
KEEPALIVE_S = 4.0  # below uvicorn's 5 s keep-alive, so a pooled connection is never stale
TICKS = os.sysconf("SC_CLK_TCK")
DISTURBED_PERCENT = 10.0  # other processes' CPU (% of one core) that makes a row suspect


# -- HTTP clients ----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    etag: str
    body: bytes


class Client(Protocol):
    async def request(
        self, method: str, path: str, credential: str, body: bytes = b"", etag: str = ""
    ) -> Reply: ...

    async def aclose(self) -> None: ...


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; answers need a Content-Length (uvicorn sends one)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.received = 0  # bytes received for the request in flight
        self._head: bytes | None = None
        self._length = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.reusable = False  # bytes nobody asked for
            return
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            length = _header(head, b"content-length")
            if not length and not head.startswith((b"http/1.1 304", b"http/1.1 204")):
                self._fail(ConnectionError("answer without Content-Length"))
                return
            self.reusable = _header(head, b"connection") != b"close"
            self._head, self._length = head, int(length or 0)
        if len(self.buffer) >= self._length:
            head, self._head = self._head, None
            body = bytes(self.buffer[: self._length])
            del self.buffer[: self._length]
            etag = _header(head, b"etag").decode()
            waiter.set_result(Reply(int(head[9:12]), etag, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("connection closed by the server"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    async def send(self, data: bytes) -> Reply:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = 0
        self.transport.write(data)
        try:
            return await self.waiter
        except BaseException:  # a timeout cancels us mid-request: the connection is unusable
            self._fail(ConnectionError("request abandoned"))
            raise
        finally:
            self.waiter = None


def _header(head: bytes, name: bytes) -> bytes:
    """The value of header ``name`` in a lower-cased response head (empty if absent)."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return b""
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class RawClient:
    """The cheap client: hand-written HTTP/1.1 over asyncio protocols, one shared LIFO pool.

    Idle connections older than ``KEEPALIVE_S`` are dropped; a reused connection that fails
    before any answer is retried once on a new one (what httpx and urllib3 also do).
    """

    def __init__(self, url: str, connections: int, reuse: bool) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)
        self._reuse = reuse
        self._host_header = f"Host: {self.host}:{self.port}\r\n"

    async def request(
        self, method: str, path: str, credential: str, body: bytes = b"", etag: str = ""
    ) -> Reply:
        extra = f"Authorization: Bearer {credential}\r\n" if credential else ""
        if etag:
            extra += f"If-None-Match: {etag}\r\n"
        if body or method == "POST":
            extra += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (f"{method} {path} HTTP/1.1\r\n{self._host_header}{extra}\r\n").encode() + body
        async with self._slots:
            for attempt in (0, 1):
                connection, reused = await self._connection()
                try:
                    reply = await connection.send(data)
                except ConnectionError:
                    if reused and attempt == 0 and not connection.received:
                        continue
                    raise
                if self._reuse and connection.reusable and not connection.closed:
                    connection.idle_since = time.monotonic()
                    self._idle.append(connection)
                elif connection.transport is not None:
                    connection.transport.close()
                return reply
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_S:
                return connection, True
            if connection.transport is not None:
                connection.transport.close()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection, False

    async def aclose(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()


class HttpxClient:
    """The reference client: httpx.AsyncClient with the same pool size and keep-alive expiry."""

    def __init__(self, url: str, connections: int, reuse: bool) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections if reuse else 0,
            keepalive_expiry=KEEPALIVE_S,
        )
        self._client = httpx.AsyncClient(base_url=url, limits=limits, timeout=None)

    async def request(
        self, method: str, path: str, credential: str, body: bytes = b"", etag: str = ""
    ) -> Reply:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        if etag:
            headers["If-None-Match"] = etag
        if body:
            headers["Content-Type"] = "application/json"
        response = await self._client.request(method, path, headers=headers, content=body or None)
        return Reply(response.status_code, response.headers.get("etag", ""), response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_client(kind: str, url: str, connections: int, reuse: bool) -> Client:
    return (HttpxClient if kind == "httpx" else RawClient)(url, connections, reuse)


# -- the fleet -------------------------------------------------------------------------------


@dataclass
class Fleet:
    """Per-device credentials, current ETags and pre-built heartbeat bodies."""

    credentials: list[str] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    heartbeats: list[bytes] = field(default_factory=list)
    telemetry: list[str] = field(default_factory=list)  # snapshot JSON templates

    def __len__(self) -> int:
        return len(self.credentials)


def inventory(hostname: str, active: ActiveModel | None) -> Inventory:
    return Inventory(
        hostname=hostname,
        arch="aarch64",
        cpu_model="Cortex-A78AE",
        cpu_count=8,
        memory_bytes=16 * 2**30,
        memory_available_bytes=11 * 2**30,
        disk_free_bytes=40 * 2**30,
        os="Linux-5.15.136-tegra",
        python="3.11.7",
        onnxruntime_version="1.20.1",
        execution_providers=["CPUExecutionProvider"],
        agent_version="0.1.0",
        active_model=active,
        labels={"bench": "fleet-load"},
    )


def snapshots(count: int, rng: np.random.Generator) -> list[str]:
    """JSON of ``count`` telemetry snapshots of a few hundred inferences each."""
    out = []
    now = time.time()
    for _ in range(count):
        snapshot = TelemetrySnapshot(MODEL, VERSION, now - 60.0, now)
        calls = int(rng.integers(200, 400))
        snapshot.count = calls
        snapshot.latency.add_many(rng.lognormal(np.log(0.004), 0.3, calls))
        snapshot.confidence.add_many(rng.beta(8.0, 1.5, calls))
        out.append(json.dumps(snapshot.to_dict(), separators=(",", ":")))
    return out


def telemetry_body(template: str) -> bytes:
    now = time.time()
    return (
        f'{{"batch_id":"{uuid.uuid4().hex}","dropped_total":0,"windows":[{{"window_id":'
        f'"{uuid.uuid4().hex}","model":"{MODEL}","version":"{VERSION}","started_at":'
        f'{now - 60.0:.3f},"ended_at":{now:.3f},"snapshot":{template},"swaps":0,"rollbacks":0}}]}}'
    ).encode()


async def enroll(client: Client, fleet: Fleet, token: str, count: int, concurrency: int) -> None:
    """Enrol devices until the fleet has ``count``; fetch each one's signed desired state once."""
    slots = asyncio.Semaphore(concurrency)
    start = len(fleet)
    new = count - start
    credentials: list[str] = [""] * new
    etags: list[str] = [""] * new
    heartbeats: list[bytes] = [b""] * new

    async def one(index: int) -> None:
        hostname = f"edge-{start + index:05d}"
        body = EnrollRequest(token=token, inventory=inventory(hostname, None))
        async with slots:
            reply = await client.request(
                "POST", f"{API_PREFIX}/enroll", "", body.model_dump_json().encode()
            )
            if reply.status != 200:
                raise RuntimeError(f"enrol: HTTP {reply.status} {reply.body[:300]!r}")
            credential = json.loads(reply.body)["credential"]
            reply = await client.request("GET", PATHS[0], credential)
        if reply.status != 200 or not reply.etag:
            raise RuntimeError(f"desired state: HTTP {reply.status} {reply.body[:300]!r}")
        signed = SignedDesiredState.model_validate_json(reply.body)
        model = signed.signed.model
        if model is None or model.name != MODEL or not signed.signatures:
            raise RuntimeError(f"desired state without a signed {MODEL} deployment: {signed}")
        active = ActiveModel(
            name=model.name, version=model.version, release=model.release, sha256=model.sha256
        )
        beat = Heartbeat(
            inventory=inventory(hostname, active),
            state="idle",
            desired_version=signed.signed.version,
        )
        credentials[index], etags[index] = credential, reply.etag
        heartbeats[index] = beat.model_dump_json().encode()

    await asyncio.gather(*(one(i) for i in range(new)))
    fleet.credentials += credentials
    fleet.etags += etags
    fleet.heartbeats += heartbeats


# -- CPU accounting --------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of ``pid`` (user + system; with reaped children's when ``children``)."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root``, its reaped children and its live children (PostgreSQL backends)."""
    total = process_cpu(root, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == root:
                    total += process_cpu(int(entry.name))
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already counted in user
    return total - values[3] - values[4], total


@dataclass
class CpuMeter:
    server_pid: int
    postgres_pid: int | None

    def read(self) -> dict[str, float]:
        busy, total = machine_cpu()
        return {
            "wall": time.monotonic(),
            "gen": process_cpu(os.getpid()),
            "srv": process_cpu(self.server_pid),
            "pg": tree_cpu(self.postgres_pid) if self.postgres_pid else 0.0,
            "busy": busy,
            "total": total,
        }

    @staticmethod
    def usage(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Percent of one core: generator, server, PostgreSQL, and everything else running."""
        wall = after["wall"] - before["wall"]
        out = {k: 100 * (after[k] - before[k]) / wall for k in ("gen", "srv", "pg")}
        busy = (after["busy"] - before["busy"]) / max(after["total"] - before["total"], 1)
        out["machine"] = 100 * busy * (os.cpu_count() or 1)
        out["other"] = max(out["machine"] - out["gen"] - out["srv"] - out["pg"], 0.0)
        return out


# -- the measured phase ----------------------------------------------------------------------


def schedule(
    devices: int, span: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Send times (s from the start), kinds and devices of every request, in time order."""
    times, kinds, who = [], [], []
    for kind, period in enumerate(PERIODS):
        offset = rng.uniform(0.0, period, devices)
        for step in range(math.ceil(span / period)):
            at = offset + step * period
            keep = at < span
            times.append(at[keep])
            kinds.append(np.full(int(keep.sum()), kind, dtype=np.int8))
            who.append(np.flatnonzero(keep).astype(np.int32))
    t, k, d = np.concatenate(times), np.concatenate(kinds), np.concatenate(who)
    order = np.argsort(t, kind="stable")
    return t[order], k[order], d[order]


@dataclass
class Record:
    latency: list[list[float]] = field(default_factory=lambda: [[] for _ in KINDS])
    lag: list[float] = field(default_factory=list)
    errors: list[Counter[str]] = field(default_factory=lambda: [Counter() for _ in KINDS])
    changed: int = 0
    last_done: float = 0.0
    answered_in_window: int = 0  # answers (any request) received during the measured period


async def run_level(
    client: Client, fleet: Fleet, meter: CpuMeter, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    """Drive the whole fleet for warm-up + duration; return the measured figures."""
    rng = np.random.default_rng(seed)
    span = args.warmup + args.duration
    times, kinds, who = schedule(len(fleet), span, rng)
    loop = asyncio.get_running_loop()
    record = Record()
    pending: set[asyncio.Task[None]] = set()
    timeout = args.timeout
    start = loop.time() + 0.2
    measured_from = start + args.warmup
    end = start + span

    async def one(kind: int, device: int, when: float, measured: bool) -> None:
        if measured:
            record.lag.append(loop.time() - when)
        error = ""
        try:
            async with asyncio.timeout_at(when + timeout):
                credential = fleet.credentials[device]
                if kind == 0:
                    etag = fleet.etags[device]
                    reply = await client.request("GET", PATHS[0], credential, etag=etag)
                    if reply.status == 200 and reply.etag:
                        fleet.etags[device] = reply.etag
                        record.changed += measured
                    elif reply.status != 304:
                        error = f"HTTP {reply.status}"
                else:
                    body = (
                        fleet.heartbeats[device]
                        if kind == 1
                        else telemetry_body(fleet.telemetry[device % len(fleet.telemetry)])
                    )
                    reply = await client.request("POST", PATHS[kind], credential, body)
                    if reply.status != 200:
                        error = f"HTTP {reply.status}"
        except TimeoutError:
            error = "timeout"
        except (OSError, ConnectionError) as exc:
            error = type(exc).__name__
        done = loop.time()
        if not error or error.startswith("HTTP"):
            record.answered_in_window += measured_from <= done <= end
        if measured:
            record.latency[kind].append(done - when)
            record.last_done = max(record.last_done, done)
            if error:
                record.errors[kind][error] += 1

    marks: dict[str, dict[str, float]] = {}
    loop.call_at(measured_from, lambda: marks.setdefault("start", meter.read()))
    loop.call_at(end, lambda: marks.setdefault("end", meter.read()))
    abs_times = (times + start).tolist()
    kinds_l, who_l = kinds.tolist(), who.tolist()
    i, n = 0, len(abs_times)
    while i < n:
        now = loop.time()
        if abs_times[i] > now:
            await asyncio.sleep(abs_times[i] - now)
            now = loop.time()
        while i < n and abs_times[i] <= now:
            when = abs_times[i]
            task = loop.create_task(one(kinds_l[i], who_l[i], when, when >= measured_from))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
    if loop.time() < end:
        await asyncio.sleep(end - loop.time())
    if pending:
        await asyncio.wait(pending)
    if "end" not in marks:
        marks["end"] = meter.read()
    return summarize(record, marks, args, len(fleet), measured_from)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    ms = np.asarray(values) * 1e3
    p50, p99 = np.percentile(ms, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(ms.max())}


def summarize(
    record: Record,
    marks: dict[str, dict[str, float]],
    args: argparse.Namespace,
    devices: int,
    measured_from: float,
) -> dict[str, Any]:
    elapsed = max(args.duration, record.last_done - measured_from)
    kinds: dict[str, Any] = {}
    for index, name in enumerate(KINDS):
        latencies = record.latency[index]
        errors = sum(record.errors[index].values())
        kinds[name] = {
            "nominal_rps": devices / PERIODS[index],
            "offered_rps": len(latencies) / args.duration,
            "requests": len(latencies),
            "achieved_rps": (len(latencies) - errors) / elapsed,
            "errors": errors,
            "error_kinds": dict(record.errors[index]),
            **_percentiles(latencies),
        }
    everything = [x for lat in record.latency for x in lat]
    errors = sum(k["errors"] for k in kinds.values())
    worst = max((k["p99_ms"] for k in kinds.values() if k["requests"]), default=math.nan)
    lag = np.asarray(record.lag) * 1e3 if record.lag else np.zeros(1)
    cpu = CpuMeter.usage(marks["start"], marks["end"])
    return {
        "devices": devices,
        "nominal_rps": sum(devices / p for p in PERIODS),
        "offered_rps": len(everything) / args.duration,
        "achieved_rps": (len(everything) - errors) / elapsed,
        "requests": len(everything),
        "errors": errors,
        "changed_desired_states": record.changed,
        "all": _percentiles(everything),
        "kinds": kinds,
        "generator_lag_p99_ms": float(np.percentile(lag, 99)),
        "generator_lag_max_ms": float(lag.max()),
        "cpu_percent": cpu,
        "answered_in_window": record.answered_in_window,
        "cpu_ms_per_request": {  # CPU of the measured period over the answers it received
            k: cpu[k] * 10 * args.duration / max(record.answered_in_window, 1)
            for k in ("gen", "srv", "pg")
        },
        "held": errors == 0 and worst < args.p99_ms,
        "disturbed": cpu["other"] > DISTURBED_PERCENT,
    }


# -- one backend -----------------------------------------------------------------------------


@contextlib.contextmanager
def backend_env(backend: str) -> Iterator[tuple[dict[str, str], int | None]]:
    """Server environment and the PostgreSQL postmaster's pid (None for SQLite)."""
    if backend == "sqlite":
        yield {}, None
        return
    from edgefleet.testing.postgres import start_postgres

    pg = start_postgres()
    try:
        pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        yield {"EDGEFLEET_DATABASE_URL": pg.url}, pid
    finally:
        pg.stop()


def setup(server: ServerProcess) -> str:
    """Push and deploy the digits model; return a multi-use enrolment token."""
    model = build_digits_classifier()
    with model.open("rb") as file:
        server.operator(
            "POST",
            "/models",
            files={"file": (model.name, file, "application/octet-stream")},
            data={"name": MODEL, "version": VERSION},
        )
    server.operator("POST", "/deployments", json={"model": MODEL, "version": VERSION})
    return server.enroll_token(labels={"bench": "fleet-load"})


async def drive_backend(
    server: ServerProcess, postgres_pid: int | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    token = setup(server)
    client = make_client(args.client, server.url, args.connections, not args.new_connections)
    fleet = Fleet(telemetry=snapshots(16, np.random.default_rng(args.seed)))
    meter = CpuMeter(server.proc.pid, postgres_pid)
    levels: list[dict[str, Any]] = []
    try:
        for devices in args.devices:
            began = time.monotonic()
            await enroll(client, fleet, token, devices, args.enroll_concurrency)
            print(f"  {devices} devices enrolled ({time.monotonic() - began:.0f} s); measuring")
            await asyncio.sleep(1.0)
            level = await run_level(client, fleet, meter, args, args.seed + devices)
            levels.append(level)
            print_row(level)
            if not level["held"]:
                break
    finally:
        await client.aclose()
    return levels


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with (
        backend_env(backend) as (env, postgres_pid),
        tempfile.TemporaryDirectory(prefix=f"fleet-load-{backend}-") as tmp,
    ):
        server = ServerProcess.start(Path(tmp) / "server", env=env, port=0)
        try:
            levels = asyncio.run(drive_backend(server, postgres_pid, args))
        finally:
            server.stop()
    held = [lv["devices"] for lv in levels if lv["held"]]
    return {"backend": backend, "levels": levels, "largest_held": max(held, default=0)}


# -- report ----------------------------------------------------------------------------------


HEADER = (
    f"{'devices':>7} {'offer/s':>7} {'got/s':>7} {'err':>4} | "
    + " | ".join(f"{k[:9]:>9} p50/p99/max ms" for k in KINDS)
    + f" | {'lag p99':>7} | {'gen%':>4} {'srv%':>4} {'pg%':>4} {'oth%':>4}"
    + f" | {'gen':>5} {'srv':>5} {'pg':>5} ms/req | held"
)


def print_row(level: dict[str, Any]) -> None:
    cells = []
    for name in KINDS:
        k = level["kinds"][name]
        cells.append(f"{k['p50_ms']:7.1f} {k['p99_ms']:7.1f} {k['max_ms']:8.1f}")
    cpu, per = level["cpu_percent"], level["cpu_ms_per_request"]
    print(
        f"{level['devices']:>7} {level['offered_rps']:7.0f} {level['achieved_rps']:7.0f} "
        f"{level['errors']:>4} | " + " | ".join(cells) + f" | {level['generator_lag_p99_ms']:7.1f}"
        f" | {cpu['gen']:4.0f} {cpu['srv']:4.0f} {cpu['pg']:4.0f} {cpu['other']:4.0f}"
        f" | {per['gen']:5.2f} {per['srv']:5.2f} {per['pg']:5.2f}        | "
        f"{'yes' if level['held'] else 'NO'}"
    )
    if level["disturbed"]:
        print(f"          disturbed: other processes used {cpu['other']:.0f}% of a core")
    for name in KINDS:
        if level["kinds"][name]["error_kinds"]:
            print(f"          {name} errors: {level['kinds'][name]['error_kinds']}")


def print_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"fleet load, {args.client} client, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per size, {os.cpu_count()} CPUs shared by generator, server and database"
    )
    print(TARGET)
    for result in results:
        print(f"\n{result['backend']}:")
        print(HEADER)
        for level in result["levels"]:
            print_row(level)
        print(f"largest fleet that held: {result['largest_held'] or 'none'}")
    print(
        "\nlatency: from the scheduled send time; offer/s: requests scheduled per second; "
        "got/s: successful answers per second\nCPU in % of one core: gen = this generator, "
        "srv = server, pg = PostgreSQL, oth = anything else on the machine;\n"
        "ms/req: CPU milliseconds per answer received in the measured period; "
        "lag p99: generator's own lateness, ms"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].rsplit("\n\nUsage", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        default=[1000, 2500, 5000, 7500, 10000],
        help="fleet sizes to try in order, comma separated [1000,2500,5000,7500,10000; quick 200]",
    )
    parser.add_argument(
        "--backends",
        type=lambda s: s.split(","),
        default=["sqlite", "postgres"],
        help="databases: sqlite, postgres, or both comma separated [sqlite,postgres; quick sqlite]",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per size [60; quick 10]")
    parser.add_argument("--warmup", type=float, help="discarded seconds before each [5; quick 2]")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 devices, SQLite, 10 s")
    parser.add_argument(
        "--p99-ms", type=float, default=200.0, help="a size fails at this p99 of any kind [200]"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="request timeout, s [10]")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="load generator's HTTP client"
    )
    parser.add_argument(
        "--connections", type=int, default=256, help="shared connection pool size [256]"
    )
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="a new TCP connection per request (what agents polling every 10 s get from a "
        "server that closes idle connections after 5 s) instead of the keep-alive pool",
    )
    parser.add_argument(
        "--enroll-concurrency", type=int, default=16, help="enrolments in flight [16]"
    )
    parser.add_argument("--seed", type=int, default=0, help="phase offsets and snapshots [0]")
    args = parser.parse_args()
    given = {a for a in sys.argv[1:] if a.startswith("--")}
    if args.quick:
        args.devices = args.devices if "--devices" in given else [200]
        args.backends = args.backends if "--backends" in given else ["sqlite"]
    args.duration = args.duration or (10.0 if args.quick else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; use sqlite and/or postgres")
    return args


def main() -> int:
    args = parse_args()
    results = []
    for backend in args.backends:
        print(f"{backend}: sizes {args.devices}")
        print(HEADER)
        results.append(run_backend(backend, args))
    print_report(results, args)
    result = {
        "target": TARGET,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "periods_s": dict(zip(KINDS, PERIODS, strict=True)),
            "p99_limit_ms": args.p99_ms,
            "timeout_s": args.timeout,
            "client": args.client,
            "connections": args.connections,
            "new_connections": args.new_connections,
            "quick": args.quick,
        },
        "backends": results,
        "target_met": all(r["largest_held"] >= 5000 for r in results),
    }
    print(f"saved {save('fleet_load', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
