"""pytest fixtures that give tests a real, throwaway PostgreSQL (see :mod:`.postgres`).

Use them from a ``conftest.py``, either by importing them::

    from edgefleet.testing.pytest_postgres import postgres_server, postgres_url  # noqa: F401

or, for every suite at once, with ``pytest_plugins = ["edgefleet.testing.pytest_postgres"]``
in the root ``conftest.py``. The server starts once per session, on first use. When no
PostgreSQL binaries exist the fixtures fail with :class:`PostgresNotFoundError` (never skip):
``make test`` installs PostgreSQL first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from edgefleet.testing.postgres import PostgresServer, start_postgres

__all__ = ["new_database_name", "postgres_server", "postgres_url"]


def new_database_name(prefix: str = "test") -> str:
    """A unique database name, e.g. ``test_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole test session, stopped and removed at its end."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped after the test."""
    name = new_database_name()
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
