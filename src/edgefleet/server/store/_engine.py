"""Engines for the store: URL checks, SQLite's pragmas and transaction mode, error messages.

Errors are told apart by cause: a database that cannot be reached or fails is a
:class:`~edgefleet.errors.StoreError` (the API answers 503: try again later), while a statement
the database refuses because of the values it carries (a number out of its column's range,
NUL in text, text too long, a row that breaks a unique or foreign key) is
:class:`RefusedValueError` or :class:`RefusedRowError`, which the API answers with a 4xx: the
same request would be refused again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine

from edgefleet.errors import ConflictError, EdgefleetError, ProtocolError, StoreError

__all__ = [
    "BEGIN_OPTION",
    "RefusedRowError",
    "RefusedValueError",
    "classify_error",
    "create_store_engine",
    "describe_error",
    "mask_url",
]

BEGIN_OPTION = "edgefleet_sqlite_begin"
"""Execution option naming SQLite's transaction mode: "DEFERRED" (default) or "IMMEDIATE"."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write transaction to end."""

POSTGRES_CONNECT_TIMEOUT_S = 10

MIN_SQLITE = (3, 35)
"""The first SQLite with ``RETURNING`` (2021)."""

_SCHEMES = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def mask_url(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparsable URL>"


def _parse(url: str) -> URL:
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as error:
        raise StoreError(f"invalid database URL {mask_url(url)!r}; expected {_SCHEMES}") from error
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql" and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old for the store (it needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer, for RETURNING); use a Python built "
                "with a newer SQLite, or PostgreSQL"
            )
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            raise StoreError(
                f"database URL {mask_url(parsed)!r} names an in-memory SQLite database, which "
                "no other connection or process can see; give a file path (sqlite:///PATH)"
            )
        if not Path(database).expanduser().parent.is_dir():
            raise StoreError(
                f"database URL {mask_url(parsed)!r}: folder {Path(database).parent} does not exist"
            )
        return parsed
    raise StoreError(
        f"unsupported database URL {mask_url(parsed)!r} (driver {parsed.drivername!r}); "
        f"expected {_SCHEMES}"
    )


# FastAPI runs sync endpoints on anyio's worker threads (40 by default). With fewer pooled
# connections than threads, every request beyond the pool opened and closed its own connection
# (a new PostgreSQL backend process each time), which made the server collapse under load.
POOL_SIZE = 40


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``, checked by opening one connection.

    Raises
    ------
    StoreError
        The URL is malformed or names an unsupported database, or the database cannot be
        reached; the message shows the URL with its password masked.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed,
            pool_size=POOL_SIZE,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
        _configure_sqlite(engine)
    else:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        engine = sa.create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=0,
            connect_args=connect_args,
        )
    try:
        with engine.connect():
            pass
    except exc.SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(
            f"cannot open database {mask_url(parsed)}: {describe_error(error, parsed)}"
        ) from error
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and foreign keys on every connection; BEGIN issued by SQLAlchemy.

    The sqlite3 module's own transaction handling is switched off so that the store decides how
    each transaction begins: ``BEGIN IMMEDIATE`` for writes takes SQLite's write lock up front,
    so concurrent writers (threads or processes) queue on the busy timeout instead of failing
    when a read lock cannot be upgraded.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting while another process holds it.

    The mode is stored in the file, so only the first connection to a new database switches it.
    SQLite does not call the busy handler for the exclusive lock the switch takes (two processes
    opening one new database at once would fail at once with "database is locked"), so the
    switch is retried here, within the same busy timeout as other writes.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class RefusedValueError(ProtocolError):
    """The database refused a value of the request: out of range, NUL in text, too long."""


class RefusedRowError(ConflictError):
    """The database refused a row because of what is stored (a unique or foreign key)."""


def classify_error(error: BaseException, url: URL | None = None) -> EdgefleetError:
    """The domain error for a failed statement: refused content (4xx) or a failed store (503).

    ``error`` is a SQLAlchemy error, or the :class:`OverflowError` that Python's sqlite3 raises
    for an integer beyond 64 bits before SQLite sees it.
    """
    if isinstance(error, OverflowError):
        return RefusedValueError(f"a number is out of the database's range: {error}")
    detail = describe_error(error, url)
    if isinstance(error, exc.DataError):
        return RefusedValueError(f"the database refused a value: {detail}")
    if isinstance(error, exc.IntegrityError):
        return RefusedRowError(f"the database refused the change: {detail}")
    where = f" on {mask_url(url)}" if url is not None else ""
    return StoreError(f"database error{where}: {detail}")


def describe_error(error: BaseException, url: URL | None = None) -> str:
    """A one-line description of a database error, without SQL, parameters or a password."""
    detail = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    text = " ".join(str(detail).split()) or type(detail).__name__
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        text += " (the schema is missing or old: run Store.migrate())"
    return text
