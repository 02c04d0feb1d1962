"""Run the shipped alembic migrations programmatically (no ``alembic.ini``)."""

from __future__ import annotations

import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
"""``edgefleet/server/migrations``: ``env.py`` and ``versions/``."""

ADVISORY_LOCK_KEY = zlib.crc32(b"edgefleet.server.store.migrate")
"""PostgreSQL advisory lock that serialises migrations of one database."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic configuration for the shipped migrations, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the shipped migrations have no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(writer: Engine) -> None:
    """Upgrade the database to the newest revision, in one transaction.

    Concurrent calls (several server processes starting at once) are serialised: on
    PostgreSQL by a transaction-level advisory lock, on SQLite by its write lock (``writer``
    begins with ``BEGIN IMMEDIATE``). The later caller then finds the schema up to date.
    """
    with writer.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        command.upgrade(alembic_config(connection), "head")
