"""Every contract test runs once per backend: a SQLite file and a PostgreSQL database.

PostgreSQL is a throwaway cluster started once per session (edgefleet.testing.postgres). Tests
share one migrated PostgreSQL database, emptied before each test; each SQLite test
gets a copy of a migrated file. Tests of migrations get a database of their own, never migrated.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from edgefleet.server.store import Store, open_store
from edgefleet.server.store.schema import metadata
from edgefleet.testing.postgres import PostgresServer
from edgefleet.testing.pytest_postgres import (  # noqa: F401 (fixtures used by name)
    new_database_name,
    postgres_server,
    postgres_url,
)

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database the test runs against."""
    name: str = request.param
    return name


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """URL of an empty database of the test's own (never migrated)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'edgefleet.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "edgefleet.db"
    with open_store(f"sqlite:///{path}") as store:
        store.migrate()
    return path


@pytest.fixture(scope="session")
def migrated_postgres(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """An engine on the migrated PostgreSQL database the tests share."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database(new_database_name("contract"))
    with open_store(url) as store:
        store.migrate()
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _delete_all_rows(engine: sa.Engine) -> None:
    """Empty every table (DELETE is much faster than TRUNCATE on tables this small)."""
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """URL of a migrated database with no rows."""
    if backend == "sqlite":
        path = tmp_path / "edgefleet.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    engine: sa.Engine = request.getfixturevalue("migrated_postgres")
    _delete_all_rows(engine)
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on a migrated database with no rows."""
    with open_store(store_url) as opened:
        yield opened
