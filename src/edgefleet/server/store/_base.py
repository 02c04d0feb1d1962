"""What every part of the store shares: the engine, transactions and dialect-specific INSERTs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.schema import Table

from edgefleet.errors import EdgefleetError, NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._engine import BEGIN_OPTION, classify_error, mask_url

__all__ = ["CHUNK", "StoreBase", "chunks"]

CHUNK = 500
"""Ids per ``IN (...)`` (well below SQLite's and PostgreSQL's limits on bound parameters)."""


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


Insert = postgresql.Insert | sqlite.Insert


class StoreBase:
    """The engine and the two kinds of transaction every store method runs in.

    Parameters
    ----------
    engine
        From :func:`edgefleet.server.store._engine.create_store_engine`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        self._dialect = engine.dialect.name

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return mask_url(self._engine.url)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot; never blocks writers).

        Raises
        ------
        RefusedValueError, RefusedRowError
            The database refused a value or a row of the request (see :func:`classify_error`).
        StoreError
            The database failed or cannot be reached.
        """
        try:
            with self._engine.connect() as connection:
                yield connection
        except EdgefleetError:
            raise
        except (exc.SQLAlchemyError, OverflowError) as error:
            raise self._store_error(error) from error

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on any error.

        On SQLite it begins with ``BEGIN IMMEDIATE``: writers queue on SQLite's write lock, so
        a read-modify-write inside one transaction is atomic across threads and processes. On
        PostgreSQL each method relies on single atomic statements (``UPDATE ... RETURNING``,
        ``INSERT ... ON CONFLICT``) under the default READ COMMITTED isolation.

        Raises the same errors as :meth:`_read`.
        """
        try:
            with self._writer.begin() as connection:
                yield connection
        except EdgefleetError:
            raise
        except (exc.SQLAlchemyError, OverflowError) as error:
            raise self._store_error(error) from error

    def _store_error(self, error: exc.SQLAlchemyError | OverflowError) -> EdgefleetError:
        """The domain error for ``error``: refused content (a 4xx) or a failed store (503)."""
        return classify_error(error, self._engine.url)

    def _insert(self, table: Table) -> Insert:
        """An INSERT with this dialect's ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _existing_devices(connection: Connection, device_ids: Sequence[str]) -> set[str]:
        """Those of ``device_ids`` that are enrolled."""
        devices = schema.devices
        return {
            row.device_id
            for chunk in chunks(sorted(set(device_ids)), CHUNK)
            for row in connection.execute(
                sa.select(devices.c.device_id).where(devices.c.device_id.in_(chunk))
            )
        }

    @staticmethod
    def _require_device(connection: Connection, device_id: str) -> None:
        """Raise :class:`NotFoundError` unless ``device_id`` is enrolled."""
        devices = schema.devices
        query = sa.select(devices.c.device_id).where(devices.c.device_id == device_id)
        found = connection.execute(query).first()
        if found is None:
            raise NotFoundError(f"no device {device_id!r}")
