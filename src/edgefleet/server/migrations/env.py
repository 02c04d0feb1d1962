"""Alembic environment of the store; :meth:`Store.migrate` passes the connection to use.

Store.migrate() opens a write transaction (holding a PostgreSQL advisory lock, or SQLite's
write lock) and hands its connection over in ``config.attributes["connection"]``, so every
revision runs inside that transaction and concurrent migrations are serialised.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from edgefleet.server.store.schema import metadata


def run_migrations() -> None:
    """Run the pending revisions on the connection :meth:`Store.migrate` handed over."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "edgefleet's migrations run through Store.migrate(), which passes a connection in "
            "config.attributes['connection']"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite has no ALTER COLUMN
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file with its proxies installed; `pytest --doctest-modules` merely
# imports it, and then there is nothing to run.
if hasattr(context, "config"):
    run_migrations()
