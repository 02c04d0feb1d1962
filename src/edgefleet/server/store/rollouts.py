"""Rollouts and A/B experiments, with compare-and-set transitions and a timeline of events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import RolloutEventRow, RolloutRow

__all__ = ["ACTIVE_STATES", "RolloutStore"]

ACTIVE_STATES = ("running", "paused", "concluded")
"""States in which a rollout still owns its devices (a new one for the model must wait)."""


def _row(row: Any) -> RolloutRow:
    return RolloutRow(
        rollout_id=row.rollout_id,
        kind=row.kind,
        model=row.model,
        candidate=dict(row.candidate),
        previous=dict(row.previous),
        selector=dict(row.selector),
        plan=dict(row.plan),
        state=row.state,
        stage=row.stage,
        stage_started_at=row.stage_started_at,
        status=dict(row.status),
        reason=row.reason,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class RolloutStore(StoreBase):
    """Rollouts."""

    def create_rollout(self, row: RolloutRow, event: Mapping[str, Any]) -> RolloutRow:
        """Store a new rollout and its first timeline entry, in one transaction.

        Raises
        ------
        ConflictError
            Another rollout of the same model is still active (running, paused or concluded),
            or the id is taken.
        """
        table = schema.rollouts
        with self._write() as connection:
            busy = connection.execute(
                sa.select(table.c.rollout_id).where(
                    table.c.model == row.model, table.c.state.in_(ACTIVE_STATES)
                )
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"rollout {busy.rollout_id} of model {row.model} is still active; "
                    "promote, abort or wait for it first"
                )
            taken = connection.execute(
                sa.select(table.c.rollout_id).where(table.c.rollout_id == row.rollout_id)
            ).first()
            if taken is not None:
                raise ConflictError(f"rollout id {row.rollout_id} is taken")
            connection.execute(sa.insert(table).values(**row.__dict__))
            self._event(connection, row.rollout_id, row.created_at, event)
        return row

    def get_rollout(self, rollout_id: str) -> RolloutRow | None:
        """The rollout ``rollout_id``, or None."""
        table = schema.rollouts
        with self._read() as connection:
            found = connection.execute(
                sa.select(table).where(table.c.rollout_id == rollout_id)
            ).first()
        return None if found is None else _row(found)

    def list_rollouts(self, *, states: tuple[str, ...] | None = None) -> list[RolloutRow]:
        """Rollouts, newest first; only those in ``states`` when given."""
        table = schema.rollouts
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.rollout_id)
        if states is not None:
            query = query.where(table.c.state.in_(states))
        with self._read() as connection:
            return [_row(row) for row in connection.execute(query)]

    def update_rollout(
        self,
        rollout_id: str,
        revision: int,
        now: float,
        changes: Mapping[str, Any],
        events: list[Mapping[str, Any]] | None = None,
    ) -> RolloutRow:
        """Apply ``changes`` if the rollout is still at ``revision``; add timeline ``events``.

        The revision grows by one. This compare-and-set makes a transition happen once even
        when two server processes evaluate the same rollout.

        Raises
        ------
        NotFoundError
            No such rollout.
        ConflictError
            The rollout moved on meanwhile (another process or an operator changed it).
        """
        table = schema.rollouts
        allowed = {"state", "stage", "stage_started_at", "status", "reason", "previous"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a rollout")
        with self._write() as connection:
            result = connection.execute(
                sa.update(table)
                .where(table.c.rollout_id == rollout_id, table.c.revision == revision)
                .values(**changes, revision=revision + 1, updated_at=now)
            )
            if result.rowcount != 1:
                exists = connection.execute(
                    sa.select(table.c.revision).where(table.c.rollout_id == rollout_id)
                ).first()
                if exists is None:
                    raise NotFoundError(f"no rollout {rollout_id!r}")
                raise ConflictError(
                    f"rollout {rollout_id} changed meanwhile (revision {exists.revision}, "
                    f"expected {revision}); read it again"
                )
            for event in events or []:
                self._event(connection, rollout_id, now, event)
            found = connection.execute(sa.select(table).where(table.c.rollout_id == rollout_id))
            return _row(found.one())

    def add_rollout_event(self, rollout_id: str, at: float, event: Mapping[str, Any]) -> None:
        """Add one timeline entry (``{"kind": ..., **detail}``) without a transition."""
        with self._write() as connection:
            self._event(connection, rollout_id, at, event)

    def list_rollout_events(self, rollout_id: str, limit: int = 1000) -> list[RolloutEventRow]:
        """The rollout's timeline, oldest first (the newest ``limit`` entries)."""
        table = schema.rollout_events
        query = (
            sa.select(table)
            .where(table.c.rollout_id == rollout_id)
            .order_by(table.c.at.desc(), table.c.id.desc())
            .limit(limit)
        )
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [
            RolloutEventRow(row.id, row.rollout_id, row.at, row.kind, dict(row.detail))
            for row in reversed(rows)
        ]

    @staticmethod
    def _event(
        connection: Connection, rollout_id: str, at: float, event: Mapping[str, Any]
    ) -> None:
        detail = {k: v for k, v in event.items() if k != "kind"}
        connection.execute(
            sa.insert(schema.rollout_events).values(
                rollout_id=rollout_id, at=at, kind=str(event["kind"]), detail=detail
            )
        )
