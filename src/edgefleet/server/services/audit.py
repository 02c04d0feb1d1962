"""The audit trail: every operator action and every automatic decision of the server.

Each entry is stored (queryable through the operator API and ``edgefleet audit``) and written
to the ``edgefleet.audit`` logger as one structured line: ``audit actor=... action=...`` in the
text log format, one JSON object in the JSON format (``edgefleet server --log-format json``).

Actions are dotted names: operator actions are ``<resource>.<verb>`` named after the route
(``deployments.create``, ``devices.decommission``), automatic decisions name their subject
(``rollout.advance``, ``rollout.pause``, ``rollout.rollback``, ``rollout.complete``,
``fl.round_close``). Automatic decisions have the actor :data:`SERVER`.

What a request can put in an entry is made safe before it is stored or logged
(:func:`clean`): control characters are escaped (so no stored text or log line carries a raw
newline, and PostgreSQL never refuses a NUL) and each text is cut to a bounded length. A text
log line quotes every value that is not a plain token (:func:`edgefleet.server.logs.text_fields`),
so no value can forge a second ``audit`` line.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from edgefleet.errors import EdgefleetError
from edgefleet.server.context import ServerContext
from edgefleet.server.logs import text_fields
from edgefleet.server.store.rows import AuditRow

__all__ = [
    "MAX_NAME",
    "MAX_OUTCOME",
    "MAX_TARGET",
    "SERVER",
    "clean",
    "log_line",
    "record",
    "record_decision",
]

log = logging.getLogger("edgefleet.audit")

SERVER = "server"
"""The actor of the server's automatic decisions."""

MAX_NAME = 200
"""Characters of an actor or action kept (the rest is cut off; the columns hold 200)."""

MAX_TARGET = 256
"""Characters of a target kept."""

MAX_OUTCOME = 500
"""Characters of an outcome kept."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def clean(text: str, limit: int) -> str:
    r"""``text`` with control characters escaped and cut to ``limit`` characters.

    Examples
    --------
    >>> print(clean("d1\naudit actor=root\x00", 64))
    d1\naudit actor=root\x00
    >>> clean("x" * 10, 4)
    'x...'
    """
    escaped = _CONTROL.sub(_escape, text)
    return escaped if len(escaped) <= limit else escaped[: max(0, limit - 3)] + "..."


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
    log.info("audit %s", text_fields(fields), extra={"fields": {**fields, "detail": row.detail}})


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
    """Store an audit entry and log it (its texts made safe first, see :func:`clean`).

    Raises
    ------
    StoreError
        The entry could not be stored (it is logged all the same).
    """
    at = time.time() if now is None else now
    actor, action = clean(actor, MAX_NAME), clean(action, MAX_NAME)
    target, outcome = clean(target, MAX_TARGET), clean(outcome, MAX_OUTCOME)
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
