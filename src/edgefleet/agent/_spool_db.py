"""SQLite plumbing of :mod:`edgefleet.agent.spool`: connection, transactions, counters, repair."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = [
    "COUNTERS",
    "TABLES",
    "CorruptError",
    "DropFile",
    "bump",
    "connect",
    "in_transaction",
    "is_corrupt",
    "move_aside",
    "payload_bytes",
    "read_counters",
    "read_rows",
    "salvage",
]

log = logging.getLogger("edgefleet.agent.spool")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

TABLES = ("windows", "events")
"""Eviction order: windows go first."""
COUNTERS = ("dropped_windows", "dropped_events", "recoveries")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# AUTOINCREMENT: row ids are never reused, so acknowledging a stale batch can only delete the
# rows it read, even after every row was deleted once.
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


class CorruptError(Exception):
    """``PRAGMA quick_check`` found damage that no statement has tripped over yet."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the spool file: WAL, ``synchronous=FULL``, checked, schema in place."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            lines = [ln for r in check for ln in str(r[0]).splitlines() if "***" not in ln]
            raise CorruptError(f"integrity check failed: {'; '.join(lines[:2])[:300]}")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in one write transaction: committed whole or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def is_corrupt(exc: BaseException) -> bool:
    """Whether SQLite calls the file damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, CorruptError) or (
        isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    )


def bump(conn: sqlite3.Connection, name: str, by: int) -> None:
    """Add ``by`` to a persisted counter."""
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (name, by),
    )


def read_counters(conn: sqlite3.Connection) -> dict[str, int]:
    """Every counter, 0 for those never bumped."""
    found = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    return {n: int(found.get(n, 0)) for n in COUNTERS}


def payload_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of stored payloads in both tables."""
    sizes = [conn.execute(f"SELECT COALESCE(SUM(size), 0) FROM {t}").fetchone()[0] for t in TABLES]
    return int(sum(sizes))


def read_rows(
    conn: sqlite3.Connection, table: str, limit: int, model: type[M]
) -> list[tuple[int, M]]:
    """The oldest ``limit`` rows, parsed; a row that no longer parses is dropped and counted."""
    rows = conn.execute(f"SELECT id, payload FROM {table} ORDER BY id LIMIT ?", (limit,))
    good = []
    for rowid, payload in rows.fetchall():
        try:
            good.append((int(rowid), model.model_validate_json(payload)))
        except ValidationError as exc:  # e.g. written by an agent speaking another protocol
            log.warning("dropping unreadable spooled %s %d: %s", table[:-1], rowid, exc)
            conn.execute(f"DELETE FROM {table} WHERE id = ?", (rowid,))
            bump(conn, f"dropped_{table}", 1)
    return good


def salvage(path: Path) -> dict[str, int]:
    """Counters and pending row counts (``windows``, ``events``) a damaged file still yields."""
    found: dict[str, int] = {}
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return found
    try:
        for query, key in (
            ("SELECT name, value FROM counters", ""),
            ("SELECT COUNT(*) FROM windows", "windows"),
            ("SELECT COUNT(*) FROM events", "events"),
        ):
            try:
                rows = conn.execute(query).fetchall()
            except sqlite3.Error:
                continue
            if key:
                found[key] = int(rows[0][0])
            else:
                found.update({str(k): int(v) for k, v in rows if k in COUNTERS})
    finally:
        conn.close()
    return found


def move_aside(path: Path) -> Path:
    """Rename a damaged file (and its log) to ``<name>.corrupt-<unix time>``; return it."""
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    while aside.exists():
        aside = aside.with_name(aside.name + "-1")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside


class DropFile:
    """The drop counters, also kept beside the database so that they outlive a corrupt file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, int]:
        """The counters last written; empty if the file is missing or unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {n: int(data.get(n, 0)) for n in COUNTERS}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def write(self, counts: dict[str, int]) -> None:
        """Replace the counters atomically (temporary file, fsync, rename)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(counts, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
