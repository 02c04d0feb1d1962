"""Leases for background loops that only one server process at a time may run."""

from __future__ import annotations

import sqlalchemy as sa

from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase

__all__ = ["LockStore"]


class LockStore(StoreBase):
    """Named leases with an owner and an expiry, in the ``locks`` table.

    A lease (rather than a PostgreSQL session advisory lock) works the same on SQLite and
    PostgreSQL, needs no connection held open between calls, and survives a dropped
    connection; a crashed holder's lease simply runs out.
    """

    def try_lock(self, name: str, owner: str, lease_s: float, now: float) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``now + lease_s``.

        Parameters
        ----------
        name
            The lock, e.g. ``"timestamp-resign"``.
        owner
            A name unique to the caller (e.g. host, process id and a random suffix).
        lease_s
            How long the lease lasts unless renewed; renew well before it runs out.
        now
            The caller's clock (Unix seconds).

        Returns
        -------
        bool
            True when ``owner`` holds the lease now: it was free, expired (``now`` at or
            past its expiry) or already ``owner``'s (then it is renewed). False while another
            owner's lease runs.

        Raises
        ------
        ValueError
            ``lease_s`` is not positive.
        """
        if not lease_s > 0:
            raise ValueError(f"a lease must last longer than 0 s, not {lease_s}")
        table = schema.locks
        upsert = self._insert(table).values(name=name, owner=owner, expires_at=now + lease_s)
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"owner": upsert.excluded.owner, "expires_at": upsert.excluded.expires_at},
            where=sa.or_(table.c.owner == owner, table.c.expires_at <= now),
        ).returning(table.c.owner)
        with self._write() as connection:
            holder = connection.execute(statement).scalar()
        return holder == owner

    def release_lock(self, name: str, owner: str) -> bool:
        """Give the lease ``name`` up if ``owner`` holds it; return whether it did."""
        table = schema.locks
        with self._write() as connection:
            result = connection.execute(
                sa.delete(table).where(table.c.name == name, table.c.owner == owner)
            )
            return bool(result.rowcount)
