"""Telemetry windows, stored once per ``(device_id, window_id)``, and the spool's drop counter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from edgefleet.errors import NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import CHUNK, StoreBase, chunks
from edgefleet.server.store.rows import TelemetryBatchRow, TelemetryRow

__all__ = ["TelemetryStore"]

_REQUIRED = ("window_id", "model", "version", "started_at", "ended_at", "snapshot")


def _values(device_id: str, index: int, window: Mapping[str, Any], now: float) -> dict[str, Any]:
    missing = [key for key in _REQUIRED if key not in window]
    if missing:
        raise ValueError(f"telemetry window {index} has no {', '.join(missing)}")
    return {
        "device_id": device_id,
        "window_id": str(window["window_id"]),
        "model": str(window["model"]),
        "version": str(window["version"]),
        "started_at": float(window["started_at"]),
        "ended_at": float(window["ended_at"]),
        "snapshot": dict(window["snapshot"]),
        "swaps": int(window.get("swaps", 0)),
        "rollbacks": int(window.get("rollbacks", 0)),
        "received_at": now,
        "role": str(window.get("role", "active")),
        "shadow": None if window.get("shadow") is None else dict(window["shadow"]),
    }


def _row(row: Any) -> TelemetryRow:
    return TelemetryRow(
        id=row.id,
        device_id=row.device_id,
        window_id=row.window_id,
        model=row.model,
        version=row.version,
        started_at=row.started_at,
        ended_at=row.ended_at,
        snapshot=dict(row.snapshot),
        swaps=row.swaps,
        rollbacks=row.rollbacks,
        received_at=row.received_at,
        role=row.role,
        shadow=None if row.shadow is None else dict(row.shadow),
    )


class TelemetryStore(StoreBase):
    """Telemetry windows."""

    def add_telemetry(
        self,
        device_id: str,
        windows: Sequence[Mapping[str, Any]],
        dropped_total: int,
        now: float,
    ) -> tuple[int, int]:
        """Store a device's telemetry windows and its spool's drop counter.

        Parameters
        ----------
        device_id
            The reporting device.
        windows
            Dicts with the fields of :class:`edgefleet.protocol.v1.TelemetryWindow`
            (``swaps`` and ``rollbacks`` default to 0).
        dropped_total
            Windows the device's spool ever dropped; the device keeps the highest value seen,
            so a late, older batch never lowers it.
        now
            When the batch was received.

        Returns
        -------
        tuple of (int, int)
            ``(accepted, duplicates)``: windows stored now, and windows stored before.

        Raises
        ------
        NotFoundError
            No device ``device_id``.
        ValueError
            A window lacks a required field.
        """
        (result,) = self.add_telemetry_batches(
            [TelemetryBatchRow(device_id, windows, dropped_total, now)]
        )
        if result is None:
            raise NotFoundError(f"no device {device_id!r}")
        return result

    def add_telemetry_batches(
        self, batches: Sequence[TelemetryBatchRow]
    ) -> list[tuple[int, int] | None]:
        """Store several devices' batches in one transaction (see :meth:`add_telemetry`).

        Returns, per batch in order, ``(accepted, duplicates)``, or None when its device does
        not exist (that batch is skipped, the others are stored). A window that appears in
        two batches is accepted in the first and a duplicate in the second.

        Raises
        ------
        ValueError
            A window lacks a required field (nothing is stored).
        """
        prepared = [
            [_values(b.device_id, i, w, b.received_at) for i, w in enumerate(b.windows)]
            for b in batches
        ]
        table = schema.telemetry_windows
        devices = schema.devices
        with self._write() as connection:
            known = self._existing_devices(connection, [b.device_id for b in batches])
            drops = [
                {"b_device_id": b.device_id, "b_dropped": b.dropped_total}
                for b in batches
                if b.device_id in known and b.dropped_total > 0  # counters start at 0
            ]
            if drops:
                dropped: sa.BindParameter[int] = sa.bindparam("b_dropped", type_=sa.BigInteger())
                connection.execute(
                    sa.update(devices)
                    .where(
                        devices.c.device_id == sa.bindparam("b_device_id"),
                        devices.c.telemetry_dropped < dropped,
                    )
                    .values(telemetry_dropped=dropped),
                    drops,
                )
            rows = [
                row
                for b, batch in zip(batches, prepared, strict=True)
                for row in batch
                if b.device_id in known
            ]
            inserted: set[tuple[str, str]] = set()
            if rows:
                statement = (
                    self._insert(table)
                    .on_conflict_do_nothing(index_elements=[table.c.device_id, table.c.window_id])
                    .returning(table.c.device_id, table.c.window_id)
                )
                inserted = {(r.device_id, r.window_id) for r in connection.execute(statement, rows)}
        results: list[tuple[int, int] | None] = []
        for b, batch in zip(batches, prepared, strict=True):
            if b.device_id not in known:
                results.append(None)
                continue
            accepted = 0
            for row in batch:
                key = (row["device_id"], row["window_id"])
                if key in inserted:  # stored by this call: counts for the first batch only
                    inserted.discard(key)
                    accepted += 1
            results.append((accepted, len(batch) - accepted))
        return results

    def list_telemetry(
        self,
        *,
        device_id: str | None = None,
        model: str | None = None,
        version: str | None = None,
        since: float | None = None,
        device_ids: Sequence[str] | None = None,
        received_since: float | None = None,
    ) -> list[TelemetryRow]:
        """Stored windows matching every filter given, oldest first.

        Parameters
        ----------
        device_id, model, version
            Only windows of this device, model name, model version.
        since
            Only windows that started at or after this time.
        device_ids
            Only windows of these devices.
        received_since
            Only windows the server received at or after this time.
        """
        table = schema.telemetry_windows
        query = sa.select(table).order_by(table.c.started_at, table.c.id)
        if device_id is not None:
            query = query.where(table.c.device_id == device_id)
        if model is not None:
            query = query.where(table.c.model == model)
        if version is not None:
            query = query.where(table.c.version == version)
        if since is not None:
            query = query.where(table.c.started_at >= since)
        if received_since is not None:
            query = query.where(table.c.received_at >= received_since)
        if device_ids is None:
            with self._read() as connection:
                rows = connection.execute(query).all()
            return [_row(row) for row in rows]
        found: list[TelemetryRow] = []
        with self._read() as connection:
            for chunk in chunks(sorted(set(device_ids)), CHUNK):
                part = query.where(table.c.device_id.in_(chunk))
                found.extend(_row(row) for row in connection.execute(part))
        return sorted(found, key=lambda row: (row.started_at, row.id))
