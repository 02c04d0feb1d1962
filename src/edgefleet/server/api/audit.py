"""The audit trail over HTTP: every operator action is recorded, and can be read back.

:class:`AuditTrail` (an ASGI middleware) records each operator request that changes something
(any method but GET, HEAD and OPTIONS under ``/api/operator/``) once it is answered: the
operator token's name as the actor, an action named after the route, the target (what the
handler set with :func:`set_target`, else the path's ids) and the outcome (``ok`` or the status
and error the client was refused with, the 413 of an oversized body included).

Only operators' actions are stored: a request without a valid operator token (refused 401 or
403) is counted in :data:`not_operators` and logged as a warning now and then, never stored, so
no stranger can fill the table. Requests refused before a route matched (an unknown route) are
not recorded. ``GET /api/operator/v1/audit`` pages through the trail.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefleet.errors import EdgefleetError
from edgefleet.protocol.bounds import INT64_MAX
from edgefleet.server.api.auth import OPERATOR_NAME, CurrentOperator, context
from edgefleet.server.api.limits import REFUSAL
from edgefleet.server.api.params import DEFAULT_LIMIT, Limit, TextQuery
from edgefleet.server.context import ServerContext
from edgefleet.server.services import audit
from edgefleet.server.store.rows import AuditRow
from edgefleet.server.tokens import hash_token

__all__ = [
    "AuditEntry",
    "AuditPage",
    "AuditTrail",
    "NotOperators",
    "action_name",
    "not_operators",
    "router",
    "set_target",
]

PREFIX = "/api/operator/v1"
router = APIRouter(prefix=PREFIX, tags=["operator"])
Ctx = Annotated[ServerContext, Depends(context)]

_VERBS = {"POST": "create", "PUT": "set", "PATCH": "update", "DELETE": "delete"}
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_BODY = 4096
"""How much of an answer is kept to read its error from."""
_TARGET = "audit_target"


def set_target(request: Request, target: str) -> None:
    """Name what the operator's request acts on in its audit entry (e.g. ``digits@2``)."""
    setattr(request.state, _TARGET, target)


class NotOperators:
    """How many requests to audited routes came without a valid operator token (thread-safe)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self) -> int:
        """Count one more; returns the count."""
        with self._lock:
            self._count += 1
            return self._count

    @property
    def count(self) -> int:
        """Requests counted so far."""
        return self._count


not_operators = NotOperators()
"""Requests to change something through the operator API refused as not an operator's."""


class AuditEntry(BaseModel):
    """One recorded action or decision."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntry:
        """From a stored row."""
        return cls(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            detail=row.detail,
        )


class AuditPage(BaseModel):
    """Entries newest first; ``next_before`` fetches the next page (None: the last one)."""

    entries: list[AuditEntry]
    next_before: int | None


@router.get("/audit")
def list_audit(
    ctx: Ctx,
    _: CurrentOperator,
    limit: Limit = DEFAULT_LIMIT,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="Page on: only ids below this one.")
    ] = None,
    actor: TextQuery = None,
    action: TextQuery = None,
    target: TextQuery = None,
    since: Annotated[
        float | None, Query(allow_inf_nan=False, description="Unix time: entries from then.")
    ] = None,
) -> AuditPage:
    """Audited actions, newest first, ``limit`` per page.

    ``action=rollout`` finds every ``rollout.*`` decision.
    """
    rows = ctx.store.list_audit(
        limit=limit, before_id=before, actor=actor, action=action, target=target, since=since
    )
    return AuditPage(
        entries=[AuditEntry.of(r) for r in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
    )


def action_name(method: str, template: str, path_params: dict[str, str]) -> tuple[str, str]:
    """``(action, target)`` of an operator request from its route's path template.

    The action is the path's fixed words joined by dots; a trailing word after an id is the
    verb (``pause``, ``decommission``), otherwise the method names it. The target is the ids.

    Examples
    --------
    >>> action_name("POST", "/api/operator/v1/deployments", {})
    ('deployments.create', '')
    >>> action_name("POST", "/api/operator/v1/devices/{device_id}/decommission",
    ...             {"device_id": "d1"})
    ('devices.decommission', 'd1')
    >>> action_name("POST", "/api/operator/v1/rollouts/{rollout_id}/{action}",
    ...             {"rollout_id": "ro-1", "action": "pause"})
    ('rollouts.pause', 'ro-1')
    >>> action_name("PATCH", "/api/operator/v1/devices/{device_id}/labels", {"device_id": "d1"})
    ('devices.labels.update', 'd1')
    """
    words: list[str] = []
    ids: list[str] = []
    verb_at_end = False
    for part in template.removeprefix(PREFIX).strip("/").split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            if name == "action":
                words.append(path_params.get(name, name))
                verb_at_end = True
            else:
                ids.append(str(path_params.get(name, "")))
                verb_at_end = False
        else:
            words.append(part)
            verb_at_end = bool(ids)
    if not (verb_at_end and method == "POST"):
        words.append(_VERBS.get(method, method.lower()))
    return ".".join(w for w in words if w), "/".join(ids)


class AuditTrail:
    """ASGI middleware: record every operator request that changes something, once answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; record it once answered if it is an operator action."""
        if (
            scope["type"] != "http"
            or scope["method"] in _READS
            or not str(scope["path"]).startswith("/api/operator/")
        ):
            await self.app(scope, receive, send)
            return
        status = 500
        body = bytearray()
        recorded = False

        async def record() -> None:
            nonlocal recorded
            route = scope.get("route")
            ctx = getattr(scope["app"].state, "ctx", None)
            if not recorded and route is not None and ctx is not None:
                recorded = True
                await run_in_threadpool(self._record, ctx, scope, route.path, status, bytes(body))

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b"")[: max(0, _MAX_BODY - len(body))])
                if not message.get("more_body", False):
                    # stored before the client has the whole answer: a client that reads the
                    # trail right after its action finds it there
                    await record()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            await record()  # an action that failed before it answered

    @staticmethod
    def _record(ctx: ServerContext, scope: Scope, template: str, status: int, body: bytes) -> None:
        action, target = action_name(scope["method"], template, scope.get("path_params", {}))
        state = scope.get("state") or {}
        actor = state.get(OPERATOR_NAME) or _actor(ctx, scope)
        if actor is None:
            count = not_operators.add()
            if _power_of_ten(count):
                audit.log.warning(
                    "%d requests to change something through the operator API came without "
                    "a valid operator token; they are not recorded",
                    count,
                )
            return
        # what the client got: an oversized body's 413, not what the app said after it
        status, body = state.get(REFUSAL) or (status, body)
        outcome = "ok" if status < 400 else f"refused {status}{_error(body)}"
        try:
            audit.record(
                ctx,
                actor=str(actor),
                action=action,
                target=str(state.get(_TARGET) or target),
                outcome=outcome,
                detail={
                    "status": status,
                    "path": audit.clean(str(scope["path"]), audit.MAX_TARGET),
                },
            )
        except EdgefleetError as exc:
            audit.log.error("storing the audit entry of %s failed: %s", action, exc)


def _power_of_ten(n: int) -> bool:
    """Whether ``n`` is 1, 10, 100, ...

    >>> [n for n in range(1, 200) if _power_of_ten(n)]
    [1, 10, 100]
    """
    while n and n % 10 == 0:
        n //= 10
    return n == 1


def _error(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and "error" in data:
        return f" {data.get('code', '')}: {data['error']}"
    return ""


def _actor(ctx: ServerContext, scope: Scope) -> str | None:
    """The name of the request's operator token (None if it has no valid one).

    Read when the request was answered before its route authenticated it (an oversized body).
    """
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    operator = ctx.store.find_operator_token(hash_token(token.strip()))
                except EdgefleetError:
                    return "unknown (store failed)"
                if operator is not None:
                    return operator.name
    return None
