"""Alembic migrations of the control plane's store, shipped in the package.

:meth:`edgefleet.server.store.Store.migrate` runs them programmatically (no ``alembic.ini``).
To write a new revision, describe the change in :mod:`edgefleet.server.store.schema` and add a
file to ``versions/`` whose ``down_revision`` is the current head; a contract test checks that
the migrated database matches the schema module on SQLite and PostgreSQL.
"""
