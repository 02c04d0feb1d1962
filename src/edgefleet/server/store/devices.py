"""Enrolled devices: identity, labels, last heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.protocol.labels import check_labels, matches
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import DeviceRow, HeartbeatRow

__all__ = ["DeviceStore"]


def device_row(row: Any) -> DeviceRow:
    """A :class:`DeviceRow` from a result row of the ``devices`` table."""
    return DeviceRow(
        device_id=row.device_id,
        credential_hash=row.credential_hash,
        labels=dict(row.labels),
        inventory=dict(row.inventory),
        state=row.state,
        enrolled_at=row.enrolled_at,
        last_seen_at=row.last_seen_at,
        telemetry_dropped=row.telemetry_dropped,
        desired_version=row.desired_version,
        decommissioned_at=row.decommissioned_at,
    )


class DeviceStore(StoreBase):
    """Devices."""

    def create_device(
        self,
        device_id: str,
        credential_hash: str,
        labels: dict[str, str],
        inventory: dict[str, Any],
        now: float,
    ) -> DeviceRow:
        """Enrol a device (state ``"enrolled"``, seen ``now``, desired version 0).

        Raises
        ------
        ConflictError
            The device id or the credential hash is taken.
        """
        table = schema.devices
        statement = (
            self._insert(table)
            .values(
                device_id=device_id,
                credential_hash=credential_hash,
                labels=dict(labels),
                inventory=dict(inventory),
                state="enrolled",
                enrolled_at=now,
                last_seen_at=now,
                telemetry_dropped=0,
                desired_version=0,
            )
            .on_conflict_do_nothing()
            .returning(*table.c)
        )
        with self._write() as connection:
            row = connection.execute(statement).first()
        if row is None:
            raise ConflictError(f"device {device_id!r} or its credential exists already")
        return device_row(row)

    def get_device(self, device_id: str) -> DeviceRow | None:
        """The device ``device_id``, or None."""
        table = schema.devices
        with self._read() as connection:
            row = connection.execute(sa.select(table).where(table.c.device_id == device_id)).first()
        return None if row is None else device_row(row)

    def find_device_by_credential(self, credential_hash: str) -> DeviceRow | None:
        """The device whose credential has this hash, or None."""
        table = schema.devices
        with self._read() as connection:
            row = connection.execute(
                sa.select(table).where(table.c.credential_hash == credential_hash)
            ).first()
        return None if row is None else device_row(row)

    def list_devices(
        self, selector: dict[str, str] | None = None, *, include_decommissioned: bool = False
    ) -> list[DeviceRow]:
        """Devices whose labels match every ``key=value`` of ``selector`` (all if None or empty).

        Sorted by device id. Labels are matched in Python, the same way on every dialect.
        Decommissioned devices are left out (so no deployment, rollout or federated job selects
        them) unless ``include_decommissioned``.
        """
        table = schema.devices
        query = sa.select(table).order_by(table.c.device_id)
        if not include_decommissioned:
            query = query.where(table.c.decommissioned_at.is_(None))
        with self._read() as connection:
            rows = connection.execute(query).all()
        devices = [device_row(row) for row in rows]
        if not selector:
            return devices
        return [device for device in devices if matches(selector, device.labels)]

    def record_heartbeats(self, beats: Sequence[HeartbeatRow]) -> list[str]:
        """Store heartbeats (new inventory, state, last seen) in one transaction.

        Labels stay as enrolled. Returns the ids of the devices that do not exist (their
        heartbeats are skipped; the others are stored).
        """
        if not beats:
            return []
        table = schema.devices
        statement = (
            sa.update(table)
            .where(table.c.device_id == sa.bindparam("b_device_id"))
            .values(
                inventory=sa.bindparam("b_inventory", type_=table.c.inventory.type),
                state=sa.bindparam("b_state"),
                last_seen_at=sa.bindparam("b_seen"),
            )
        )
        ids = [beat.device_id for beat in beats]
        with self._write() as connection:
            known = self._existing_devices(connection, ids)
            rows = [
                {
                    "b_device_id": beat.device_id,
                    "b_inventory": dict(beat.inventory),
                    "b_state": beat.state,
                    "b_seen": beat.seen_at,
                }
                for beat in beats
                if beat.device_id in known
            ]
            if rows:
                connection.execute(statement, rows)
        return [device_id for device_id in ids if device_id not in known]

    def decommission_device(self, device_id: str, now: float) -> tuple[DeviceRow, str]:
        """Retire a device: its credential stops working, its rows (history) stay.

        Returns the device and the hash of the credential it had (for caches to forget).
        Decommissioning a decommissioned device changes nothing.

        Raises
        ------
        NotFoundError
            No device ``device_id``.
        """
        table = schema.devices
        with self._write() as connection:
            row = connection.execute(sa.select(table).where(table.c.device_id == device_id)).first()
            if row is None:
                raise NotFoundError(f"no device {device_id!r}")
            old_hash = str(row.credential_hash)
            if row.decommissioned_at is None:
                row = connection.execute(
                    sa.update(table)
                    .where(table.c.device_id == device_id)
                    # no token hashes to this: the credential can never match again
                    .values(credential_hash=f"revoked:{device_id}", decommissioned_at=now)
                    .returning(*table.c)
                ).one()
        return device_row(row), old_hash

    def update_device_labels(
        self, device_id: str, set_labels: dict[str, str], remove: Sequence[str] = ()
    ) -> DeviceRow:
        """Remove the keys ``remove`` from a device's labels, then set ``set_labels``.

        Read and written in one transaction (the row locked on PostgreSQL, the write lock held
        on SQLite), so concurrent changes to different keys are all kept.

        Raises
        ------
        NotFoundError
            No device ``device_id``.
        ConfigurationError
            A key or value of the resulting labels is malformed (nothing is changed).
        """
        table = schema.devices
        with self._write() as connection:
            row = connection.execute(
                sa.select(table.c.labels).where(table.c.device_id == device_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no device {device_id!r}")
            labels = {k: v for k, v in dict(row.labels).items() if k not in set(remove)}
            labels.update(set_labels)
            updated = connection.execute(
                sa.update(table)
                .where(table.c.device_id == device_id)
                .values(labels=check_labels(labels))
                .returning(*table.c)
            ).one()
        return device_row(updated)
