"""A durable telemetry and event spool on the device: SQLite, bounded by a byte budget.

Windows and events wait here until the control plane has acknowledged them, so a device
offline for days loses only what the budget forces out, and counts it. An item the control
plane refuses for good (the uploader splits a refused batch down to the item at fault) is
dropped and counted the same way (:meth:`Spool.drop`), so one bad row never blocks the rows
behind it, nor the good rows sent with it. Each add is one SQLite
transaction: the row, the evictions it forces and the drop counters commit together or not at
all.

Durability. The database runs in WAL mode with ``synchronous=FULL``: every commit fsyncs the
write-ahead log, so a committed window survives a killed process *and* a power cut. WAL with
``synchronous=NORMAL`` would never corrupt the file either, but could lose the last commits on
power loss, silently; a commit a minute makes the extra fsync free.

Budget. ``budget_bytes`` bounds the stored payloads (JSON bytes), not the file, which adds
SQLite's page overhead and a write-ahead log of up to a few MiB. After every add, while the
payloads exceed the budget, the oldest windows are deleted, then the oldest events. Drops are
counted in the database and in a small side file ``<name>.dropped`` (rewritten only when a
count changes), so :attr:`Spool.dropped_total` never goes back, even after a corrupt file.

Corruption. A file SQLite calls corrupt (at open, by ``PRAGMA quick_check``, or later) is
moved aside to ``<name>.corrupt-<unix time>`` and a fresh spool starts. What the old file
still lets read (its counters and how many windows and events were pending) is added to the
drop counters, and a ``telemetry_dropped`` event saying what happened waits in the new spool.

Examples
--------
>>> import tempfile
>>> from edgefleet.protocol.v1 import Event
>>> with tempfile.TemporaryDirectory() as tmp, Spool(Path(tmp) / "spool.db") as spool:
...     spool.add_event(Event(event_id="e0000001", at=0.0, kind="verified"))
...     batch = spool.pending()
...     spool.ack(batch)
...     ([e.kind for e in batch.events], spool.size_bytes(), spool.dropped_total)
(['verified'], 0, 0)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from edgefleet.agent._spool_db import (
    COUNTERS,
    TABLES,
    CorruptError,
    DropFile,
    bump,
    connect,
    in_transaction,
    is_corrupt,
    move_aside,
    payload_bytes,
    read_counters,
    read_rows,
    salvage,
)
from edgefleet.errors import ConfigurationError, StoreError
from edgefleet.protocol.v1 import Event, TelemetryWindow

__all__ = ["Spool", "SpoolBatch"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SpoolBatch:
    """The oldest pending windows and events, with the row ids :meth:`Spool.ack` deletes."""

    windows: list[TelemetryWindow]
    events: list[Event]
    window_rowids: list[int] = field(default_factory=list)
    event_rowids: list[int] = field(default_factory=list)


class Spool:
    """Windows and events waiting for upload, in a SQLite file within a byte budget.

    Thread-safe (one lock around one connection); one :class:`Spool` per file.

    Raises
    ------
    ConfigurationError
        ``budget_bytes`` is not a positive integer, or the file cannot be opened or created
        (a missing permission, a directory in its place).
    """

    def __init__(self, path: Path, *, budget_bytes: int = 16 * 2**20) -> None:
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
            raise ConfigurationError(
                f"spool budget must be a positive byte count: {budget_bytes!r}"
            )
        self.path = Path(path)
        self.budget_bytes = budget_bytes
        self.recovered_from: Path | None = None
        """Where the last corrupt spool file was moved, if one was found."""
        self._lock = threading.RLock()
        self._drops = DropFile(self.path.with_name(self.path.name + ".dropped"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = connect(self.path)
            except (sqlite3.DatabaseError, CorruptError) as exc:
                if not is_corrupt(exc):
                    raise
                conn = self._recover(exc)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(f"cannot open the spool {self.path}: {exc}") from exc
        self._conn: sqlite3.Connection | None = conn
        self._transaction(self._reconcile)

    # -- adding and uploading ---------------------------------------------------------------

    def add_window(self, window: TelemetryWindow) -> None:
        """Store a telemetry window, evicting the oldest rows beyond the budget."""
        self._add("windows", window)

    def add_event(self, event: Event) -> None:
        """Store an event, evicting the oldest rows beyond the budget."""
        self._add("events", event)

    def pending(self, *, max_windows: int = 200, max_events: int = 500) -> SpoolBatch:
        """The oldest windows and events not yet acknowledged, oldest first."""
        if max_windows < 0 or max_events < 0:
            raise ConfigurationError(f"batch limits must be >= 0: {max_windows}, {max_events}")

        def read(conn: sqlite3.Connection) -> SpoolBatch:
            windows = read_rows(conn, "windows", max_windows, TelemetryWindow)
            events = read_rows(conn, "events", max_events, Event)
            return SpoolBatch(
                [w for _, w in windows],
                [e for _, e in events],
                [i for i, _ in windows],
                [i for i, _ in events],
            )

        return self._transaction(read)

    def ack(self, batch: SpoolBatch, *, windows: bool = True, events: bool = True) -> None:
        """Delete what the control plane acknowledged (rows already evicted are skipped).

        ``windows`` and ``events`` say which part of ``batch`` was acknowledged.
        """

        def delete(conn: sqlite3.Connection) -> None:
            if windows:
                conn.executemany(
                    "DELETE FROM windows WHERE id = ?", [(i,) for i in batch.window_rowids]
                )
            if events:
                conn.executemany(
                    "DELETE FROM events WHERE id = ?", [(i,) for i in batch.event_rowids]
                )

        self._transaction(delete)

    def drop(self, batch: SpoolBatch, *, windows: bool, events: bool) -> int:
        """Delete what the control plane refused for good, counting it as dropped.

        ``windows`` and ``events`` say which part of ``batch`` was refused. Rows already gone
        (evicted meanwhile) are not counted twice. Returns how many rows were dropped.
        """

        def delete(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            dropped = 0
            for table, rowids, refused in (
                ("windows", batch.window_rowids, windows),
                ("events", batch.event_rowids, events),
            ):
                if not refused:
                    continue
                gone = sum(
                    conn.execute(f"DELETE FROM {table} WHERE id = ?", (i,)).rowcount for i in rowids
                )
                if gone:
                    bump(conn, f"dropped_{table}", gone)
                dropped += gone
            return dropped, read_counters(conn)

        with self._lock:  # the side file too, as in _add
            dropped, counts = self._transaction(delete)
            if dropped:
                self._drops.write(counts)
        return dropped

    @property
    def dropped_total(self) -> int:
        """Windows and events ever dropped (over budget, unreadable, refused, or corrupt)."""
        counts = self.counters()
        return counts["dropped_windows"] + counts["dropped_events"]

    def counters(self) -> dict[str, int]:
        """``dropped_windows``, ``dropped_events`` and ``recoveries`` (corrupt files replaced)."""
        return self._transaction(read_counters)

    def size_bytes(self) -> int:
        """Bytes of stored payloads, the quantity the budget bounds."""
        return self._transaction(payload_bytes)

    def close(self) -> None:
        """Close the database (idempotent); SQLite checkpoints the log into the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _add(self, table: str, item: BaseModel) -> None:
        payload = item.model_dump_json().encode()
        if len(payload) > self.budget_bytes:
            raise ConfigurationError(
                f"a {table[:-1]} of {len(payload)} bytes cannot fit the spool budget of "
                f"{self.budget_bytes} bytes; raise the budget"
            )

        def work(conn: sqlite3.Connection) -> dict[str, int] | None:
            conn.execute(
                f"INSERT INTO {table} (payload, size) VALUES (?, ?)", (payload, len(payload))
            )
            return read_counters(conn) if self._evict(conn) else None

        with self._lock:  # the side file too: counts are written in the order they grew
            counts = self._transaction(work)
            if counts is not None:
                self._drops.write(counts)

    def _evict(self, conn: sqlite3.Connection) -> bool:
        excess = payload_bytes(conn) - self.budget_bytes
        dropped = False
        for table in TABLES:
            while excess > 0:
                row = conn.execute(f"SELECT id, size FROM {table} ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    break
                conn.execute(f"DELETE FROM {table} WHERE id = ?", (row[0],))
                bump(conn, f"dropped_{table}", 1)
                excess -= row[1]
                dropped = True
        return dropped

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the spool {self.path} is closed")
            try:
                return in_transaction(self._conn, work)
            except (sqlite3.DatabaseError, CorruptError) as exc:
                if not is_corrupt(exc):
                    raise StoreError(f"telemetry spool {self.path}: {exc}") from exc
                self._conn.close()
                self._conn = None  # stays closed should the repair itself fail
                try:
                    self._conn = self._recover(exc)
                except (sqlite3.Error, OSError) as failed:
                    raise StoreError(f"cannot replace corrupt spool {self.path}: {failed}") from exc
                return in_transaction(self._conn, work)

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        stored, side = read_counters(conn), self._drops.read()
        for name in COUNTERS:
            if side.get(name, 0) > stored[name]:
                bump(conn, name, side[name] - stored[name])
        if any(stored[n] > side.get(n, 0) for n in COUNTERS):
            self._drops.write(stored)

    def _recover(self, exc: BaseException) -> sqlite3.Connection:
        salvaged = salvage(self.path)
        aside = self.recovered_from = move_aside(self.path)
        conn = connect(self.path)
        counts = {n: max(salvaged.get(n, 0), self._drops.read().get(n, 0)) for n in COUNTERS}
        lost_w, lost_e = salvaged.get("windows"), salvaged.get("events")
        counts["dropped_windows"] += lost_w or 0
        counts["dropped_events"] += lost_e or 0
        counts["recoveries"] += 1
        lost = (
            f"{lost_w} pending windows and {lost_e} pending events were lost"
            if lost_w is not None and lost_e is not None
            else "its pending windows and events could not be counted"
        )
        detail = f"telemetry spool was corrupt ({exc}); moved to {aside.name}; {lost}"
        log.error("%s", detail)
        event = Event(
            event_id=uuid.uuid4().hex,
            at=time.time(),
            kind="telemetry_dropped",
            ok=False,
            detail=detail[:4000],
        )
        payload = event.model_dump_json().encode()

        def fresh(c: sqlite3.Connection) -> None:
            for name, value in counts.items():
                bump(c, name, value)
            c.execute("INSERT INTO events (payload, size) VALUES (?, ?)", (payload, len(payload)))

        in_transaction(conn, fresh)
        self._drops.write(counts)
        return conn
