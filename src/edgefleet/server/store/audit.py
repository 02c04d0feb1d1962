"""The audit log and the deployment history: append-only, read newest first in pages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import AuditRow, DeploymentRow

__all__ = ["AuditStore"]


def _audit_row(row: Any) -> AuditRow:
    return AuditRow(
        id=int(row.id),
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        detail=dict(row.detail),
    )


def _deployment_row(row: Any) -> DeploymentRow:
    return DeploymentRow(
        id=int(row.id),
        model=row.model,
        version=row.version,
        release=int(row.release),
        selector=dict(row.selector),
        devices=list(row.devices),
        actor=row.actor,
        created_at=row.created_at,
    )


class AuditStore(StoreBase):
    """Audit entries and deployments."""

    def add_audit(
        self,
        *,
        at: float,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditRow:
        """Append an audit entry; texts longer than their column are cut (never refused)."""
        table = schema.audit_log
        values = {
            "at": at,
            "actor": actor[:200],
            "action": action[:200],
            "target": target[:500],
            "outcome": outcome[:500],
            "detail": dict(detail or {}),
        }
        with self._write() as connection:
            row = connection.execute(table.insert().values(**values).returning(*table.c)).one()
        return _audit_row(row)

    def list_audit(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: float | None = None,
    ) -> list[AuditRow]:
        """Entries newest first, at most ``limit``; ``before_id`` pages on (ids below it).

        ``action`` matches an action or every action under it (``rollout`` finds
        ``rollout.advance``); ``target`` matches exactly.
        """
        table = schema.audit_log
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(table.c.id < before_id)
        if actor is not None:
            query = query.where(table.c.actor == actor)
        if action is not None:
            query = query.where(
                sa.or_(table.c.action == action, table.c.action.startswith(action + "."))
            )
        if target is not None:
            query = query.where(table.c.target == target)
        if since is not None:
            query = query.where(table.c.at >= since)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_audit_row(row) for row in rows]

    def add_deployment(
        self,
        *,
        model: str,
        version: str,
        release: int,
        selector: dict[str, str],
        devices: list[str],
        actor: str,
        now: float,
    ) -> DeploymentRow:
        """Record a deployment in the history."""
        table = schema.deployments
        values = {
            "model": model,
            "version": version,
            "release": release,
            "selector": dict(selector),
            "devices": list(devices),
            "actor": actor[:200],
            "created_at": now,
        }
        with self._write() as connection:
            row = connection.execute(table.insert().values(**values).returning(*table.c)).one()
        return _deployment_row(row)

    def list_deployments(
        self, *, limit: int, before_id: int | None = None, model: str | None = None
    ) -> list[DeploymentRow]:
        """Deployments newest first, at most ``limit``; ``before_id`` pages on."""
        table = schema.deployments
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(table.c.id < before_id)
        if model is not None:
            query = query.where(table.c.model == model)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_deployment_row(row) for row in rows]

    def get_deployment(self, deployment_id: int) -> DeploymentRow | None:
        """The deployment ``deployment_id``, or None."""
        table = schema.deployments
        with self._read() as connection:
            row = connection.execute(sa.select(table).where(table.c.id == deployment_id)).first()
        return None if row is None else _deployment_row(row)
