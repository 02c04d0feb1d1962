"""Desired states: per device, a version that only grows and the model payload to sign."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edgefleet.errors import NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import CHUNK, StoreBase, chunks
from edgefleet.server.store.rows import DesiredStateRow

__all__ = ["DesiredStateStore"]


class DesiredStateStore(StoreBase):
    """Desired states."""

    def set_desired_state(
        self,
        device_id: str,
        model: dict[str, Any] | None,
        now: float,
        expires_at: float,
        shadow: dict[str, Any] | None = None,
    ) -> int:
        """Give ``device_id`` a new desired state; return its version (one more than before).

        Parameters
        ----------
        device_id
            An enrolled device.
        model
            The desired model (a :class:`edgefleet.protocol.v1.DesiredModel` as a dict), or
            None for "run no model".
        now
            The issue time.
        expires_at
            When the signed desired state expires.
        shadow
            A :class:`edgefleet.protocol.v1.ShadowSpec` as a dict, or None.

        Raises
        ------
        NotFoundError
            No device ``device_id``.
        """
        return self.set_desired_states([device_id], model, now, expires_at, shadow)[device_id]

    def set_desired_states(
        self,
        device_ids: Sequence[str],
        model: dict[str, Any] | None,
        now: float,
        expires_at: float,
        shadow: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """Give every device of ``device_ids`` the same desired model, in one transaction.

        Each device's desired version grows by one (repeated ids count once). Either every
        device gets the new state or, when one is unknown, none does.

        Returns
        -------
        dict of str to int
            Device id -> its new desired-state version.

        Raises
        ------
        NotFoundError
            An id names no device (the message lists up to ten of them).
        """
        ids = sorted(set(device_ids))
        if not ids:
            return {}
        with self._write() as connection:
            versions = self._bump_versions(connection, ids)
            missing = [device_id for device_id in ids if device_id not in versions]
            if missing:
                shown = ", ".join(repr(d) for d in missing[:10])
                more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
                raise NotFoundError(f"no device {shown}{more}; no desired state was changed")
            # a federated assignment is kept: it changes only through set_fl_assignments
            self._upsert(
                connection,
                ("model", "shadow"),
                [
                    {
                        "device_id": device_id,
                        "version": version,
                        "model": model,
                        "shadow": shadow,
                        "fl": None,
                        "issued_at": now,
                        "expires_at": expires_at,
                    }
                    for device_id, version in versions.items()
                ],
            )
        return versions

    def _upsert(
        self, connection: Connection, parts: tuple[str, ...], rows: list[dict[str, Any]]
    ) -> None:
        """Insert desired states, or update an existing one's version, times and ``parts``.

        The columns not in ``parts`` keep their stored values (a new row takes ``rows``').
        """
        if not rows:
            return
        table = schema.desired_states
        upsert = self._insert(table)
        kept = ("version", *parts, "issued_at", "expires_at")
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.device_id],
            set_={name: upsert.excluded[name] for name in kept},
        )
        connection.execute(statement, rows)

    @staticmethod
    def _bump_versions(connection: Connection, ids: list[str]) -> dict[str, int]:
        """Increment ``desired_version`` of the known devices among the sorted ``ids``.

        On PostgreSQL the rows are locked in id order first, so that two deployments to
        overlapping sets of devices cannot deadlock.
        """
        devices = schema.devices
        versions: dict[str, int] = {}
        for chunk in chunks(ids, CHUNK):
            connection.execute(
                sa.select(devices.c.device_id)
                .where(devices.c.device_id.in_(chunk))
                .order_by(devices.c.device_id)
                .with_for_update()
            )
            result = connection.execute(
                sa.update(devices)
                .where(devices.c.device_id.in_(chunk))
                .values(desired_version=devices.c.desired_version + 1)
                .returning(devices.c.device_id, devices.c.desired_version)
            )
            versions.update({row.device_id: int(row.desired_version) for row in result})
        return versions

    def get_desired_state(self, device_id: str) -> DesiredStateRow | None:
        """The newest desired state of ``device_id``, or None (unknown device, or none yet)."""
        table = schema.desired_states
        with self._read() as connection:
            row = connection.execute(sa.select(table).where(table.c.device_id == device_id)).first()
        if row is None:
            return None
        return DesiredStateRow(
            device_id=row.device_id,
            version=row.version,
            model=None if row.model is None else dict(row.model),
            issued_at=row.issued_at,
            expires_at=row.expires_at,
            shadow=None if row.shadow is None else dict(row.shadow),
            fl=None if row.fl is None else dict(row.fl),
        )

    def set_fl_assignments(
        self,
        assignments: Mapping[str, dict[str, Any] | None],
        now: float,
        expires_at: float,
    ) -> dict[str, int]:
        """Set (or, with None, clear) the federated assignment of each device, in one transaction.

        The model and shadow parts of each desired state stay as they are; every device's
        desired version grows by one. Unknown devices are skipped (a device deleted mid-job).

        Returns
        -------
        dict of str to int
            Device id -> its new desired-state version, for the devices that exist.
        """
        ids = sorted(assignments)
        if not ids:
            return {}
        with self._write() as connection:
            versions = self._bump_versions(connection, ids)
            self._upsert(
                connection,
                ("fl",),
                [
                    {
                        "device_id": device_id,
                        "version": version,
                        "model": None,
                        "shadow": None,
                        "fl": assignments[device_id],
                        "issued_at": now,
                        "expires_at": expires_at,
                    }
                    for device_id, version in versions.items()
                ],
            )
        return versions

    def list_desired_states(self, device_ids: Sequence[str]) -> dict[str, DesiredStateRow]:
        """Device id -> newest desired state, for those of ``device_ids`` that have one."""
        table = schema.desired_states
        out: dict[str, DesiredStateRow] = {}
        with self._read() as connection:
            for chunk in chunks(sorted(set(device_ids)), CHUNK):
                query = sa.select(table).where(table.c.device_id.in_(chunk))
                for row in connection.execute(query):
                    out[row.device_id] = DesiredStateRow(
                        device_id=row.device_id,
                        version=row.version,
                        model=None if row.model is None else dict(row.model),
                        issued_at=row.issued_at,
                        expires_at=row.expires_at,
                        shadow=None if row.shadow is None else dict(row.shadow),
                        fl=None if row.fl is None else dict(row.fl),
                    )
        return out

    def desired_state_versions(
        self, issued_after: float | None = None
    ) -> dict[str, tuple[int, float, float]]:
        """Device id -> ``(version, issued_at, expires_at)`` of each newest desired state.

        With ``issued_after``, only states issued after it. One cheap read that lets a server
        process answer unchanged polls from memory.
        """
        table = schema.desired_states
        query = sa.select(table.c.device_id, table.c.version, table.c.issued_at, table.c.expires_at)
        if issued_after is not None:
            query = query.where(table.c.issued_at > issued_after)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return {
            device_id: (int(version), float(issued_at), float(expires_at))
            for device_id, version, issued_at, expires_at in rows
        }
