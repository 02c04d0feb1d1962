"""Events and telemetry windows into the spool, and the uploader that empties it.

Everything the agent reports goes through the spool first, so a device offline for days loses
nothing but what the spool's byte budget drops (and that is counted). The uploader acknowledges
a batch only after the control plane answered 2xx; a retried batch cannot double count because
the server keeps windows and events unique by id.

An item the control plane refuses for good would be refused again on every retry: it is
dropped from the spool and counted in the drop counters (windows reach the server in
``dropped_total``), and the uploader moves on. Refused for good means an answer in the control
plane's error shape (``{"error": ..., "code": ...}``) with status 400, 422, or 413 for a single
item (:attr:`~edgefleet.agent.uplink.RefusedError.permanent`). Everything else keeps the batch
for later: server trouble (5xx), throttling, a rejected credential, and any answer without the
error shape (a reverse proxy's HTML 404 or 405 says the way is misconfigured, not that the
data is bad).

One mechanism finds the item at fault: a part of a batch (its windows or its events) refused
for good or with 413 while it holds several items is split, its batch limit halved until the
part is delivered or holds the one item at fault, which alone is dropped; the limit then goes
back to its maximum. The other items of the batch are delivered. A 413 that halving settles
without a drop (the batch was merely too large) keeps the smaller limit.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, get_args

from edgefleet.agent.uplink import RefusedError, RequestTooLargeError, Uplink
from edgefleet.errors import UplinkError
from edgefleet.protocol.v1 import Event, EventBatch, EventKind, TelemetryBatch, TelemetryWindow
from edgefleet.runtime import Servable
from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["EVENT_KINDS", "EventLog", "SpoolLike", "Uploader", "WindowCollector"]

_DELIVERED, _DROPPED, _SPLIT, _SKIPPED = "delivered", "dropped", "split", "skipped"
"""What became of one part (windows or events) of an upload."""

log = logging.getLogger(__name__)

EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
_MAX_DETAIL = 4000


class BatchLike(Protocol):
    """What :meth:`SpoolLike.pending` returns."""

    @property
    def windows(self) -> Sequence[TelemetryWindow]:
        """Windows of the batch, oldest first."""
        ...

    @property
    def events(self) -> Sequence[Event]:
        """Events of the batch, oldest first."""
        ...


class SpoolLike(Protocol):
    """The part of :class:`edgefleet.agent.spool.Spool` the reporter uses."""

    def add_window(self, window: TelemetryWindow) -> object:
        """Store a window."""
        ...

    def add_event(self, event: Event) -> object:
        """Store an event."""
        ...

    def pending(self, *, max_windows: int = 200, max_events: int = 500) -> Any:
        """The oldest unacknowledged windows and events."""
        ...

    def ack(self, batch: Any, *, windows: bool = True, events: bool = True) -> object:
        """Forget a batch the server accepted."""
        ...

    def drop(self, batch: Any, *, windows: bool, events: bool) -> object:
        """Forget (part of) a batch the server refused for good, counting it as dropped."""
        ...

    def counters(self) -> dict[str, int]:
        """``dropped_windows`` and ``dropped_events``: ever dropped, never decreasing."""
        ...


class EventLog:
    """Turns the agent's steps into :class:`~edgefleet.protocol.v1.Event` rows in the spool.

    Parameters
    ----------
    spool
        Where events go.
    lock
        Serialises spool access with the other reporters.
    clock
        Unix time.
    """

    def __init__(
        self,
        spool: SpoolLike,
        lock: threading.Lock | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.lock = lock or threading.Lock()
        self.clock = clock

    def emit(
        self,
        kind: str,
        *,
        model: str = "",
        version: str = "",
        release: int = 0,
        ok: bool = True,
        detail: str = "",
    ) -> Event:
        """Record one event (an unknown ``kind`` is recorded as ``error``) and log it."""
        if kind not in EVENT_KINDS:
            detail, kind = f"{kind}: {detail}", "error"
        event = Event.model_validate(
            {
                "event_id": uuid.uuid4().hex,
                "at": self.clock(),
                "kind": kind,
                "model": model,
                "version": version,
                "release": release,
                "ok": ok,
                "detail": detail[:_MAX_DETAIL],
            }
        )
        level = logging.INFO if ok else logging.WARNING
        subject = f" {model}:{version} (release {release})" if model else ""
        log.log(level, "%s%s%s", kind, subject, f": {detail}" if detail else "")
        with self.lock:
            self.spool.add_event(event)
        return event


class WindowCollector:
    """Closes telemetry windows of the active servable into the spool.

    It also keeps the telemetry of the active servable since it was attached (merged windows
    plus the open one), which the health watch judges, and which becomes the baseline of the
    next model when this one is retired.

    Parameters
    ----------
    spool
        Where windows go.
    lock
        Serialises spool access with the other reporters.
    keep_empty
        Also spool windows without a single call (by default they are skipped).
    """

    def __init__(
        self, spool: SpoolLike, lock: threading.Lock | None = None, *, keep_empty: bool = False
    ) -> None:
        self.spool = spool
        self.spool_lock = lock or threading.Lock()
        self.keep_empty = keep_empty
        self._lock = threading.RLock()
        self._servable: Servable | None = None
        self._total: TelemetrySnapshot | None = None
        self._swaps = 0
        self._rollbacks = 0

    @property
    def servable(self) -> Servable | None:
        """The servable whose windows are collected."""
        return self._servable

    def attach(self, servable: Servable | None) -> None:
        """Collect ``servable`` from now on (the caller retired the previous one)."""
        with self._lock:
            self._servable = servable
            self._total = None

    def count_swap(self, *, rollback: bool = False) -> None:
        """Count a model swap (or a rollback) in the next window."""
        with self._lock:
            if rollback:
                self._rollbacks += 1
            else:
                self._swaps += 1

    def close_window(self) -> TelemetryWindow | None:
        """Snapshot and reset the active servable's telemetry; spool it as one window."""
        with self._lock:
            servable = self._servable
            if servable is None:
                return None
            snap = servable.telemetry.snapshot(reset=True)
            self._total = snap if self._total is None else self._total.merge(snap)
            return self._spool(snap)

    def retire(self) -> TelemetrySnapshot | None:
        """Close the last window of the active servable, detach it, return all it recorded."""
        with self._lock:
            self.close_window()
            total = self._total
            self.attach(None)
            return total

    def since_attach(self) -> TelemetrySnapshot | None:
        """Everything the active servable recorded since :meth:`attach` (windows + open one)."""
        with self._lock:
            servable = self._servable
            if servable is None:
                return None
            current = servable.telemetry.snapshot(reset=False)
            return current if self._total is None else self._total.merge(current)

    def _spool(self, snap: TelemetrySnapshot) -> TelemetryWindow | None:
        calls = snap.count + snap.errors + snap.rejected
        if not (calls or self._swaps or self._rollbacks or self.keep_empty):
            return None
        window = TelemetryWindow(
            window_id=uuid.uuid4().hex,
            model=snap.model,
            version=snap.version,
            started_at=snap.started_at,
            ended_at=snap.ended_at,
            snapshot=snap.to_dict(),
            swaps=self._swaps,
            rollbacks=self._rollbacks,
        )
        with self.spool_lock:
            self.spool.add_window(window)
        self._swaps = self._rollbacks = 0
        return window


class Uploader:
    """Sends spooled windows and events to the control plane, acknowledging only on 2xx.

    Parameters
    ----------
    spool
        The spool to empty.
    uplink
        The control plane client.
    events
        Where a ``telemetry_dropped`` event goes when the spool's drop counters grow.
    lock
        Serialises spool access with the other reporters.
    max_windows, max_events
        Largest batch; halved after a 413 or an oversized body.
    """

    def __init__(
        self,
        spool: SpoolLike,
        uplink: Uplink,
        events: EventLog,
        lock: threading.Lock | None = None,
        *,
        max_windows: int = 200,
        max_events: int = 500,
    ) -> None:
        self.spool = spool
        self.uplink = uplink
        self.events = events
        self.lock = lock or threading.Lock()
        self.max_windows = max_windows
        self.max_events = max_events
        self._maxima = {"windows": max_windows, "events": max_events}
        self._limits = dict(self._maxima)  # halved while a refusal is being split
        self._drops_noted = self._drops()
        self._windows_dropped_sent = 0  # the server's counter starts at 0 too

    def upload_once(self) -> tuple[int, bool]:
        """Send one batch; return (items acknowledged, whether more may be waiting).

        A telemetry batch goes out when windows are pending, or when the spool dropped windows
        the server has not been told of (then without windows), so drops are reported even when
        the budget left no window to send.

        A part refused in a way that splitting can settle (a 413, or a refusal for good of
        several items) is not dropped: the part's batch limit is halved and the next call sends
        the first half, so halving isolates the one item at fault, which alone is dropped and
        counted (see the module docstring). The limit then goes back to its maximum.

        Raises
        ------
        UplinkError
            The batch could not be delivered and may be later; nothing was acknowledged.
        """
        with self.lock:
            batch: BatchLike = self.spool.pending(
                max_windows=self._limits["windows"], max_events=self._limits["events"]
            )
        dropped_windows = self._drops()[0]
        windows, events = list(batch.windows), list(batch.events)
        news = dropped_windows > self._windows_dropped_sent
        if not windows and not events and not news:
            return 0, False
        outcome = {"windows": _SKIPPED, "events": _SKIPPED}
        try:
            if windows or news:
                outcome["windows"] = self._send(
                    "windows",
                    len(windows),
                    lambda: self.uplink.send_telemetry(
                        TelemetryBatch(
                            batch_id=uuid.uuid4().hex,
                            windows=windows,
                            dropped_total=dropped_windows,
                        )
                    ),
                )
                if outcome["windows"] != _SPLIT:
                    self._windows_dropped_sent = dropped_windows
            if events:
                outcome["events"] = self._send(
                    "events",
                    len(events),
                    lambda: self.uplink.send_events(EventBatch(events=events)),
                )
        finally:  # settle what was decided, even when the other part failed after it
            self._settle(batch, outcome)
        acknowledged = (len(windows) if outcome["windows"] == _DELIVERED else 0) + (
            len(events) if outcome["events"] == _DELIVERED else 0
        )
        if _SPLIT in outcome.values() or _DROPPED in outcome.values():
            return acknowledged, True  # the halves, or the rows behind the dropped one, go next
        full = len(windows) >= self._limits["windows"] or len(events) >= self._limits["events"]
        return acknowledged, full

    def _send(self, part: str, items: int, send: Callable[[], object]) -> str:
        """Send one part; return whether it was delivered, dropped, or is to be split.

        Raises
        ------
        UplinkError
            The part may be delivered later (an outage, throttling, an answer that is not the
            control plane's own refusal): it stays in the spool, its limit unchanged.
        """
        try:
            send()
        except UplinkError as exc:
            splittable = self._too_large(exc) or (isinstance(exc, RefusedError) and exc.permanent)
            if not splittable:
                raise
            if items > 1:
                self._limits[part] = max(1, items // 2)
                log.info("%d %s refused (%s); now sending at most %d", items, part, exc, items // 2)
                return _SPLIT
            if isinstance(exc, RefusedError) and not exc.permanent:
                raise  # a 413 without the server's error shape: not the server's own judgement
            log.warning(
                "dropping %d %s the control plane refused for good (counted as dropped): %s",
                items,
                part,
                exc,
            )
            return _DROPPED
        return _DELIVERED

    def _settle(self, batch: BatchLike, outcome: dict[str, str]) -> None:
        """Acknowledge delivered parts and drop refused ones (each part on its own)."""
        delivered = {part for part, result in outcome.items() if result == _DELIVERED}
        dropped = {part for part, result in outcome.items() if result == _DROPPED}
        with self.lock:
            if dropped:
                self.spool.drop(batch, windows="windows" in dropped, events="events" in dropped)
            if delivered:
                self.spool.ack(batch, windows="windows" in delivered, events="events" in delivered)
        for part in dropped:  # the item at fault is gone: full batches again
            self._limits[part] = self._maxima[part]

    def drain(self) -> int:
        """Upload batches until the spool is empty; return the items acknowledged.

        Drops since the last drain are then reported as one ``telemetry_dropped`` event (sent
        with the next drain). Only a successful drain does this, so an outage never fills the
        spool with drop reports that would push out more windows.
        """
        sent = 0
        more = True
        while more:
            done, more = self.upload_once()
            sent += done
        self._note_drops()
        return sent

    def _drops(self) -> tuple[int, int]:
        with self.lock:
            counters = self.spool.counters()
        return counters["dropped_windows"], counters["dropped_events"]

    def _note_drops(self) -> None:
        windows, events = self._drops()
        seen_windows, seen_events = self._drops_noted
        if (windows, events) != self._drops_noted:
            self.events.emit(
                "telemetry_dropped",
                ok=False,
                detail=f"the spool dropped {windows - seen_windows} windows and "
                f"{events - seen_events} events, over its byte budget or refused for good by "
                f"the control plane ({windows} windows and "
                f"{events} events in all)",
            )
            self._drops_noted = (windows, events)

    @staticmethod
    def _too_large(exc: UplinkError) -> bool:
        if isinstance(exc, RefusedError):
            return exc.status == 413
        return isinstance(exc, RequestTooLargeError)
