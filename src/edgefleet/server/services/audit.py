"""The audit trail: every operator action and every automatic decision of the server.

Each entry is stored (queryable through the operator API and ``edgefleet audit``) and written
to the ``edgefleet.audit`` logger as one structured line: ``audit actor=... action=...`` in the
text log format, one JSON object in the JSON format (``edgefleet server --log-format json``).

Actions are dotted names: operator actions are ``<resource>.<verb>`` named after the route
(``deployments.create``, ``devices.decommission``), automatic decisions name their subject
(``rollout.advance``, ``rollout.pause``, ``rollout.rollback``, ``rollout.complete``,
``fl.round_close``). Automatic decisions have the actor :data:`SERVER`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edgefleet.errors import EdgefleetError
from edgefleet.server.context import ServerContext
from edgefleet.server.store.rows import AuditRow

__all__ = ["SERVER", "log_line", "record", "record_decision"]

log = logging.getLogger("edgefleet.audit")

SERVER = "server"
"""The actor of the server's automatic decisions."""


def log_line(row: AuditRow) -> None:
    """Write ``row`` to the ``edgefleet.audit`` logger as one structured line."""
    fields = {
        "audit_id": row.id,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
    }
    text = " ".join(
        f"{key}={value!r}" if " " in str(value) else f"{key}={value}"
        for key, value in fields.items()
    )
    log.info("audit %s", text, extra={"fields": {**fields, "detail": row.detail}})


def record(
    ctx: ServerContext,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    now: float | None = None,
) -> AuditRow:
    """Store an audit entry and log it.

    Raises
    ------
    StoreError
        The entry could not be stored (it is logged all the same).
    """
    at = time.time() if now is None else now
    try:
        row = ctx.store.add_audit(
            at=at, actor=actor, action=action, target=target, outcome=outcome, detail=detail
        )
    except EdgefleetError:
        log_line(AuditRow(0, at, actor, action, target, outcome, dict(detail or {})))
        raise
    log_line(row)
    return row


def record_decision(
    ctx: ServerContext,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    now: float | None = None,
) -> None:
    """Record an automatic decision of the server; a failure to store it is logged, not raised.

    The decision itself is already persisted; losing its audit entry must not undo it.
    """
    try:
        record(
            ctx,
            actor=SERVER,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
            now=now,
        )
    except EdgefleetError as exc:
        log.error("storing the audit entry of %s on %s failed: %s", action, target, exc)
