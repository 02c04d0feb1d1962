"""Releases: TUF targets of model versions, numbered 1, 2, ... per model name, never reused."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from edgefleet.errors import NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import ReleaseRow

__all__ = ["ReleaseStore"]


def _row(row: Any) -> ReleaseRow:
    return ReleaseRow(
        name=row.name,
        release=row.release,
        version=row.version,
        target=row.target,
        sha256=row.sha256,
        length=row.length,
        custom=dict(row.custom),
        created_at=row.created_at,
    )


class ReleaseStore(StoreBase):
    """Releases."""

    def add_release(
        self,
        name: str,
        version: str,
        target: str,
        sha256: str,
        length: int,
        custom: dict[str, Any],
        now: float,
    ) -> ReleaseRow:
        """Publish a new release of ``name`` pointing at ``version``'s file.

        The release number is one more than the highest of ``name`` so far, assigned
        atomically: concurrent callers (threads, processes, server replicas) get distinct,
        consecutive numbers. The counter lives in its own row (``release_counters``), bumped
        with one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, which both SQLite (write
        lock) and PostgreSQL (row lock) serialise, so no caller ever has to retry.

        Raises
        ------
        NotFoundError
            ``name@version`` was never pushed.
        """
        counters = schema.release_counters
        bump = self._insert(counters).values(name=name, last_release=1)
        bump_statement = bump.on_conflict_do_update(
            index_elements=[counters.c.name],
            set_={"last_release": counters.c.last_release + 1},
        ).returning(counters.c.last_release)
        versions = schema.model_versions
        with self._write() as connection:
            known = connection.execute(
                sa.select(versions.c.id).where(
                    versions.c.name == name, versions.c.version == version
                )
            ).first()
            if known is None:
                raise NotFoundError(f"no model version {name}@{version} to release")
            number = int(connection.execute(bump_statement).scalar_one())
            row = connection.execute(
                schema.releases.insert()
                .values(
                    name=name,
                    release=number,
                    version=version,
                    target=target,
                    sha256=sha256,
                    length=length,
                    custom=dict(custom),
                    created_at=now,
                )
                .returning(*schema.releases.c)
            ).one()
        return _row(row)

    def get_release(self, name: str, release: int) -> ReleaseRow | None:
        """Release ``release`` of ``name``, or None."""
        table = schema.releases
        query = sa.select(table).where(table.c.name == name, table.c.release == release)
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _row(row)

    def list_releases(self, name: str) -> list[ReleaseRow]:
        """Every release of ``name``, lowest number first."""
        table = schema.releases
        query = sa.select(table).where(table.c.name == name).order_by(table.c.release)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_row(row) for row in rows]

    def latest_release(self, name: str, version: str | None = None) -> ReleaseRow | None:
        """The highest release of ``name`` (pointing at ``version``, if given), or None."""
        table = schema.releases
        query = sa.select(table).where(table.c.name == name)
        if version is not None:
            query = query.where(table.c.version == version)
        query = query.order_by(table.c.release.desc()).limit(1)
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _row(row)
