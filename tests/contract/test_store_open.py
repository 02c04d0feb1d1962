from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from edgefleet.errors import StoreError
from edgefleet.server.store import Store, open_store
from edgefleet.server.store.schema import metadata


def _unreachable_url(backend: str, tmp_path_str: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_str}/no-such-folder/edgefleet.db"
    return "postgresql+psycopg://edgefleet:s3cret-pw@127.0.0.1:1/edgefleet?connect_timeout=2"


def test_an_unreachable_database_raises_store_error_with_the_password_masked(
    backend: str, tmp_path: object
) -> None:
    url = _unreachable_url(backend, str(tmp_path))
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    if backend == "postgresql":
        assert "edgefleet:***@127.0.0.1:1" in message
    else:
        assert "does not exist" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid database URL"),
        ("mysql://root:hunter2@localhost/db", "unsupported database URL"),
        ("postgresql+asyncpg://root:hunter2@localhost/db", "unsupported database URL"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_a_bad_url_raises_store_error_naming_the_problem(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)


def test_migrate_brings_an_empty_database_to_the_newest_revision_and_can_run_again(
    empty_url: str,
) -> None:
    with open_store(empty_url) as store:
        assert store.schema_revision() is None
        store.migrate()
        assert store.schema_revision() == Store.head_revision()
        store.migrate()
        assert store.schema_revision() == Store.head_revision()


def test_the_migrated_schema_matches_the_tables_the_store_queries(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_store_used_before_migrate_says_to_run_migrate(empty_url: str) -> None:
    with open_store(empty_url) as store, pytest.raises(StoreError, match=r"Store\.migrate\(\)"):
        store.get_setting("anything")


def test_the_store_names_its_dialect_and_masks_its_url(store: Store, backend: str) -> None:
    assert store.dialect == backend
    assert backend in repr(store)


def test_a_postgresql_url_without_a_driver_uses_psycopg(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with open_store(url) as store:
        store.migrate()
        store.set_setting("driver", "psycopg")
        assert store.get_setting("driver") == "psycopg"


def test_a_database_from_a_newer_release_is_not_migrated(empty_url: str) -> None:
    with open_store(empty_url) as store:
        store.migrate()
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with open_store(empty_url) as store, pytest.raises(StoreError, match="newer edgefleet"):
        store.migrate()


def test_opening_a_new_sqlite_file_while_another_process_writes_to_it_waits_instead_of_failing(
    tmp_path: Path,
) -> None:
    # The first connections to a new file switch it to WAL. SQLite fails that switch at once,
    # without its busy timeout, while another connection holds a write transaction in the old
    # journal mode, which is what two server processes starting on one new file can produce.
    path = tmp_path / "edgefleet.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.5, writer.execute, ["COMMIT"])
    release.start()
    try:
        with open_store(f"sqlite:///{path}") as store:
            store.migrate()
            assert store.schema_revision() == Store.head_revision()
    finally:
        release.join()
        writer.close()
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
