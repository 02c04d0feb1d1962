"""Agent events, stored once per ``(device_id, event_id)`` however often a batch is retried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import EventRow

__all__ = ["EventStore"]

_REQUIRED = ("event_id", "at", "kind")


def _values(device_id: str, index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in _REQUIRED if key not in event]
    if missing:
        raise ValueError(f"event {index} has no {', '.join(missing)}")
    return {
        "device_id": device_id,
        "event_id": str(event["event_id"]),
        "at": float(event["at"]),
        "kind": str(event["kind"]),
        "model": str(event.get("model", "")),
        "version": str(event.get("version", "")),
        "release": int(event.get("release", 0)),
        "ok": bool(event.get("ok", True)),
        "detail": str(event.get("detail", "")),
    }


def _row(row: Any) -> EventRow:
    return EventRow(
        id=row.id,
        device_id=row.device_id,
        event_id=row.event_id,
        at=row.at,
        kind=row.kind,
        model=row.model,
        version=row.version,
        release=row.release,
        ok=bool(row.ok),
        detail=row.detail,
    )


class EventStore(StoreBase):
    """Events."""

    def add_events(self, device_id: str, events: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Store a device's events; an ``event_id`` seen before (or twice in the batch) is skipped.

        Parameters
        ----------
        device_id
            The reporting device.
        events
            Dicts with the fields of :class:`edgefleet.protocol.v1.Event` (``event_id``,
            ``at`` and ``kind`` required; ``model``, ``version``, ``release``, ``ok`` and
            ``detail`` default to empty, 0 and True).

        Returns
        -------
        tuple of (int, int)
            ``(accepted, duplicates)``: events stored now, and events stored before.

        Raises
        ------
        NotFoundError
            No device ``device_id``.
        ValueError
            An event lacks a required field.
        """
        rows = [_values(device_id, index, event) for index, event in enumerate(events)]
        table = schema.events
        with self._write() as connection:
            self._require_device(connection, device_id)
            if not rows:
                return 0, 0
            statement = (
                self._insert(table)
                .on_conflict_do_nothing(index_elements=[table.c.device_id, table.c.event_id])
                .returning(table.c.id)
            )
            accepted = len(connection.execute(statement, rows).all())
        return accepted, len(rows) - accepted

    def list_events(self, device_id: str | None = None, limit: int = 100) -> list[EventRow]:
        """The newest ``limit`` events (of ``device_id``, or of every device), newest first."""
        table = schema.events
        query = sa.select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        if device_id is not None:
            query = query.where(table.c.device_id == device_id)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_row(row) for row in rows]

    def find_events(self, *, kind: str, model: str, version: str, since: float) -> list[EventRow]:
        """Events of one kind about ``model@version`` at or after ``since``, oldest first."""
        table = schema.events
        query = (
            sa.select(table)
            .where(
                table.c.kind == kind,
                table.c.model == model,
                table.c.version == version,
                table.c.at >= since,
            )
            .order_by(table.c.at, table.c.id)
        )
        with self._read() as connection:
            return [_row(row) for row in connection.execute(query)]
