"""Load patterns with MLPerf LoadGen semantics: how queries are issued and latency is counted.

``single-stream``
    One query at a time; the next is issued when the previous completes. Headline: p90.
``multi-stream``
    A query is ``samples_per_query`` samples issued together; it completes when the last one
    does, and the next query is issued then. Headline: p99.
``server``
    Open loop: queries arrive as a Poisson process at ``target_qps``, whatever the target is
    doing. Latency counts from the *scheduled* arrival time, so a stalled target makes every
    query waiting behind it late (no coordinated omission). Headline: p99 under the SLO.
``offline``
    Everything at once: ``concurrency`` workers issue back to back. Headline: throughput.

A worker calls :meth:`Issuer.run` until told to stop; each completed query is recorded as
``(start_ns, done_ns, samples, ok)`` where ``start_ns`` is the scheduled time for ``server``
and ``samples`` counts batch rows. When the run stops, the server scenario still issues every
arrival that was due before the stop (they are the latest, and often the slowest, queries), for
at most :data:`DRAIN_S` seconds; arrivals still waiting then are recorded as failed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgefleet.bench.targets import Session, Target
from edgefleet.errors import ConfigurationError

__all__ = ["SCENARIOS", "Issuer", "Record", "issuer_for"]

SCENARIOS = ("single-stream", "multi-stream", "server", "offline")
HEADLINE = {"single-stream": "p90", "multi-stream": "p99", "server": "p99", "offline": "qps"}

Record = Callable[[int, int, int, bool, str | None], None]
"""``record(start_ns, done_ns, samples, ok, error)``, called once per completed query."""

_clock = time.perf_counter_ns
DRAIN_S = 10.0
"""How long a stopped server run keeps issuing the arrivals that were due before the stop."""


class Issuer:
    """Runs one scenario's load against a target from ``workers`` threads."""

    workers = 1

    def __init__(self, target: Target, sample_count: int, batch: int = 1) -> None:
        self.target = target
        self.sample_count = sample_count
        self.batch = batch
        self.stopped_ns: int | None = None  # set by the runner just before it sets ``stop``
        self._next = itertools.count()

    def sample(self) -> int:
        """The next sample index, round robin over the query set (thread-safe)."""
        return next(self._next) % self.sample_count

    def run(self, stop: threading.Event, record: Record) -> None:
        """Issue queries from the calling thread until ``stop`` is set."""
        session = self.target.session()
        try:
            while not stop.is_set():
                start = _clock()
                ok, error = _call(session, self.sample())
                record(start, _clock(), self.batch, ok, error)
        finally:
            session.close()


def _call(session: Session, index: int) -> tuple[bool, str | None]:
    try:
        session.run(index)
    except Exception as exc:  # a failed query is data: counted and reported, not fatal
        return False, f"{type(exc).__name__}: {exc}"
    return True, None


class OfflineIssuer(Issuer):
    """Back-to-back queries from several threads: throughput."""

    def __init__(self, target: Target, sample_count: int, batch: int, concurrency: int) -> None:
        super().__init__(target, sample_count, batch)
        self.workers = concurrency


class MultiStreamIssuer(Issuer):
    """``samples_per_query`` samples issued together; the query ends with the last of them."""

    def __init__(
        self, target: Target, sample_count: int, batch: int, samples_per_query: int
    ) -> None:
        super().__init__(target, sample_count, batch)
        self.per_query = samples_per_query
        self._local = threading.local()
        self._sessions: list[Session] = []
        self._lock = threading.Lock()

    def _one(self, index: int) -> tuple[bool, str | None]:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.target.session()
            with self._lock:
                self._sessions.append(session)
        return _call(session, index)

    def run(self, stop: threading.Event, record: Record) -> None:
        samples = self.per_query * self.batch
        try:
            with ThreadPoolExecutor(self.per_query, thread_name_prefix="multi-stream") as pool:
                while not stop.is_set():
                    start = _clock()
                    indices = [self.sample() for _ in range(self.per_query)]
                    results = list(pool.map(self._one, indices))
                    failed = [e for ok, e in results if not ok]
                    record(start, _clock(), samples, not failed, failed[0] if failed else None)
        finally:
            for session in self._sessions:
                session.close()


class ServerIssuer(Issuer):
    """Poisson arrivals at ``target_qps``; latency from the scheduled time."""

    def __init__(
        self,
        target: Target,
        sample_count: int,
        batch: int,
        target_qps: float,
        concurrency: int,
        seed: int,
    ) -> None:
        super().__init__(target, sample_count, batch)
        if not 0 < target_qps < float("inf"):
            raise ConfigurationError(f"the server scenario needs a rate > 0, got {target_qps}")
        self.workers = concurrency
        self.target_qps = target_qps
        self._arrivals = self._schedule(np.random.default_rng(seed))
        self._lock = threading.Lock()

    def _schedule(self, rng: np.random.Generator) -> Iterator[int]:
        t = float(_clock())
        while True:
            for gap in rng.exponential(1e9 / self.target_qps, 4096):
                t += gap
                yield int(t)

    def run(self, stop: threading.Event, record: Record) -> None:
        session = self.target.session()
        try:
            while True:
                with self._lock:
                    due = next(self._arrivals)
                if not stop.is_set():
                    _sleep_until(due, stop)
                if stop.is_set():
                    stopped = self.stopped_ns or _clock()
                    if due >= stopped:
                        break  # arrived after the run ended
                    if _clock() > stopped + DRAIN_S * 1e9:
                        late = f"not issued within {DRAIN_S:g} s after the run ended"
                        record(due, _clock(), self.batch, False, late)
                        continue
                ok, error = _call(session, self.sample())
                record(due, _clock(), self.batch, ok, error)
        finally:
            session.close()


def _sleep_until(due_ns: int, stop: threading.Event) -> bool:
    """Sleep until ``due_ns``; return True if ``stop`` was set meanwhile.

    Long waits watch ``stop``; the last stretch is a plain ``time.sleep``, whose wake-up is
    tighter than an event's (a timed lock wait), because lateness here is measured latency.
    """
    while (wait := due_ns - _clock()) > 50_000_000:
        if stop.wait((wait - 20_000_000) / 1e9):
            return True
    if wait > 0:
        time.sleep(wait / 1e9)
    return stop.is_set()


def issuer_for(
    scenario: str,
    target: Target,
    sample_count: int,
    *,
    concurrency: int,
    target_qps: float | None = None,
    samples_per_query: int = 8,
    seed: int = 0,
    batch: int = 1,
) -> Issuer:
    """The issuer for ``scenario``; bad combinations raise :class:`ConfigurationError`.

    ``batch`` is the number of rows in each sample, so that throughput and energy count
    inferences, not requests.
    """
    if scenario == "single-stream":
        return Issuer(target, sample_count, batch)
    if scenario == "offline":
        return OfflineIssuer(target, sample_count, batch, concurrency)
    if scenario == "multi-stream":
        if samples_per_query < 1:
            raise ConfigurationError("multi-stream needs at least 1 sample per query")
        return MultiStreamIssuer(target, sample_count, batch, samples_per_query)
    if scenario == "server":
        if target_qps is None:
            raise ConfigurationError("the server scenario needs --qps RATE or --find-max-qps")
        return ServerIssuer(target, sample_count, batch, target_qps, concurrency, seed)
    raise ConfigurationError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
