"""The update hold: local software asks the agent not to activate a new model for now.

While held, the agent still downloads and verifies new models ahead, but swaps nothing in; it
activates within about a second of the release. The hold lives in ``hold.json`` in the data
dir, so it survives a restart (the file exists exactly while the hold is taken). A hold longer
than ``hold_max_s`` is reported once (``hold_overdue``) and still honoured.

The local HTTP endpoint (:func:`hold_route`), on the agent's localhost server::

    POST   /agent/v1/hold    {"reason": "..."} (body optional)   take the hold
    DELETE /agent/v1/hold                                         release it
    GET    /agent/v1/hold                                         {held, since, reason, overdue}
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgefleet.agent._files import read_json, write_json_atomic
from edgefleet.agent.reporter import EventLog
from edgefleet.errors import ProtocolError
from edgefleet.runtime.oip.bounded_json import loads_bounded
from edgefleet.runtime.oip.http import Request, Response
from edgefleet.runtime.oip.status import error_body

__all__ = ["HOLD_PATH", "MAX_REASON", "UpdateHold", "hold_route"]

log = logging.getLogger(__name__)

HOLD_PATH = "/agent/v1/hold"
MAX_REASON = 500


class UpdateHold:
    """Whether local software holds updates, since when and why (persisted).

    Parameters
    ----------
    path
        ``hold.json``; present exactly while held.
    events
        Where ``held``, ``hold_released`` and ``hold_overdue`` go (none when ``None``).
    max_s
        Seconds after which a hold is reported overdue (once).
    on_release
        Called after a release (wakes the activation of a deferred model).
    clock
        Unix time.
    """

    def __init__(
        self,
        path: Path,
        events: EventLog | None = None,
        *,
        max_s: float = 3600.0,
        on_release: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.events = events
        self.max_s = max_s
        self.on_release = on_release
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._reason = ""
        self._overdue_reported = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = read_json(self.path)
            self._since = float(data["since"])
            self._reason = str(data.get("reason", ""))
            self._overdue_reported = bool(data.get("overdue_reported", False))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The file exists only while held: a damaged one still means "held".
            log.error("cannot read %s (%s); the update hold stays taken", self.path, exc)
            self._since = os.stat(self.path).st_mtime if self.path.exists() else self.clock()
            self._reason = "(the hold file was unreadable)"

    def _save(self) -> None:
        if self._since is None:
            self.path.unlink(missing_ok=True)
            return
        write_json_atomic(
            self.path,
            {
                "since": self._since,
                "reason": self._reason,
                "overdue_reported": self._overdue_reported,
            },
        )

    @property
    def held_since(self) -> float | None:
        """Unix time the hold was taken; ``None`` when not held."""
        return self._since

    @property
    def reason(self) -> str:
        """Why it is held (as local software said)."""
        return self._reason

    def status(self) -> dict[str, Any]:
        """``{"held", "since", "reason", "overdue"}`` as the endpoint answers."""
        with self._lock:
            since = self._since
            return {
                "held": since is not None,
                "since": since,
                "reason": self._reason,
                "overdue": since is not None and self.clock() - since > self.max_s,
            }

    def take(self, reason: str = "") -> dict[str, Any]:
        """Take the hold (again: only the reason changes); return the status."""
        with self._lock:
            new = self._since is None
            if new:
                self._since = self.clock()
                self._overdue_reported = False
            self._reason = reason
            self._save()
        if new and self.events is not None:
            self.events.emit("held", detail=reason or "update hold taken by local software")
        return self.status()

    def release(self) -> dict[str, Any]:
        """Release the hold (no-op when not held); return the status."""
        with self._lock:
            since = self._since
            self._since, self._reason, self._overdue_reported = None, "", False
            self._save()
        if since is not None:
            if self.events is not None:
                self.events.emit("hold_released", detail=f"held for {self.clock() - since:.0f} s")
            self.on_release()
        return self.status()

    def check_overdue(self) -> bool:
        """Emit ``hold_overdue`` once when held longer than ``max_s``; return whether it did."""
        with self._lock:
            since = self._since
            if since is None or self._overdue_reported or self.clock() - since <= self.max_s:
                return False
            self._overdue_reported = True
            self._save()
            reason = self._reason
        if self.events is not None:
            why = f" ({reason})" if reason else ""
            self.events.emit(
                "hold_overdue",
                ok=False,
                detail=f"update hold taken {self.clock() - since:.0f} s ago{why} is over "
                f"hold_max_s={self.max_s:g}; still honoured",
            )
        return True


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode())


def _reason_of(body: bytes) -> str:
    """The reason in a POST body; ``ValueError`` naming what is wrong with it."""
    if not body.strip():
        return ""
    try:
        data = loads_bounded(body, max_depth=1, what="hold body")
    except ProtocolError as exc:  # not JSON, or nested deeper than a flat object
        raise ValueError(str(exc)) from None
    if not isinstance(data, dict):
        raise ValueError('hold body must be a JSON object such as {"reason": "recording"}')
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise ValueError(f"hold body has unknown field(s) {', '.join(unknown)}; only 'reason'")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError(f"hold reason must be a string, got {type(reason).__name__}")
    if len(reason) > MAX_REASON:
        raise ValueError(f"hold reason is {len(reason)} characters; at most {MAX_REASON}")
    return reason


def hold_route(hold: UpdateHold) -> Callable[[Request], Response]:
    """The handler of :data:`HOLD_PATH` for :func:`edgefleet.runtime.oip.make_server`."""

    def handle(request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return _json(200, hold.status())
        if request.method == "POST":
            try:
                reason = _reason_of(request.body)
            except ValueError as exc:
                return Response(400, error_body(str(exc)))
            return _json(200, hold.take(reason))
        if request.method == "DELETE":
            return _json(200, hold.release())
        return Response(
            405,
            error_body(f"method {request.method} not allowed here; use GET, POST or DELETE"),
            headers=[("Allow", "GET, HEAD, POST, DELETE")],
        )

    return handle
