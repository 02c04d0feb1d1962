"""The agent's loops that talk to the control plane: desired state, heartbeats, uploads.

Each loop runs in its own thread, sleeps on the shared stop event (so a stop wakes it at once)
and retries failures with full-jitter exponential backoff. Only outgoing requests are made.
A fourth loop (:meth:`ControlLoops.run_activations`) retries a deferred activation about every
second, and at once when woken (the update hold was released), without a new desired state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edgefleet.agent.backoff import Backoff
from edgefleet.agent.fl import FLWorker
from edgefleet.agent.reporter import EventLog, Uploader
from edgefleet.agent.shadow import ShadowManager
from edgefleet.agent.trust import AgentTrust
from edgefleet.agent.updater import Updater
from edgefleet.agent.uplink import CredentialRejectedError, Uplink
from edgefleet.errors import UplinkError, VerificationError
from edgefleet.protocol.v1 import DesiredState, FLAssignment, Heartbeat, Inventory

__all__ = ["ControlLoops"]

log = logging.getLogger(__name__)

_MIN_POLL_INTERVAL_S = 1.0


class _Outage:
    """Logs the first failure of an outage loudly, the rest quietly, and the recovery."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0

    def failed(self, exc: UplinkError, delay: float) -> None:
        self.failures += 1
        if isinstance(exc, CredentialRejectedError):
            log.error(
                "%s: the control plane refused this device's credential (%s); it may have been "
                "revoked. The current model keeps serving; to rejoin, remove credential.json "
                "and start again with a new --enroll-token",
                self.what,
                exc.message,
            )
        elif self.failures == 1:
            log.warning("%s failed (%s); retrying with backoff", self.what, exc)
        else:
            log.debug("%s failed again (%s); next try in %.1f s", self.what, exc, delay)

    def succeeded(self) -> None:
        if self.failures:
            log.info("%s works again after %d failures", self.what, self.failures)
        self.failures = 0


class ControlLoops:
    """Desired-state pulls, heartbeats and uploads for one enrolled device.

    Parameters
    ----------
    device_id
        This device's id (desired states for any other are refused).
    uplink
        Authenticated client.
    trust
        Verifies desired states and fetches models.
    updater
        Applies verified desired states.
    uploader
        Empties the spool.
    events
        Where trust failures are reported.
    inventory
        Builds the inventory of a heartbeat.
    stop
        Set when the agent stops.
    shadow
        Runs the shadow candidate a desired state names (none: shadows are ignored).
    held_since
        When local software took the update hold (``None``: not held), for heartbeats.
    wake
        Set to retry a deferred activation at once.

    Attributes
    ----------
    desired
        The last verified desired state.
    server_desired_version
        The newest desired-state version the last heartbeat answer named.
    """

    def __init__(
        self,
        *,
        device_id: str,
        uplink: Uplink,
        trust: AgentTrust,
        updater: Updater,
        uploader: Uploader,
        events: EventLog,
        inventory: Callable[[], Inventory],
        stop: threading.Event,
        poll_wait_s: float,
        heartbeat_interval_s: float,
        upload_interval_s: float,
        backoff: Callable[[], Backoff],
        shadow: ShadowManager | None = None,
        held_since: Callable[[], float | None] = lambda: None,
        wake: threading.Event | None = None,
    ) -> None:
        self.device_id = device_id
        self.shadow = shadow
        self.held_since = held_since
        self.wake = wake or threading.Event()
        self.uplink = uplink
        self.trust = trust
        self.updater = updater
        self.uploader = uploader
        self.events = events
        self.inventory = inventory
        self.stop = stop
        self.poll_wait_s = poll_wait_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.upload_interval_s = upload_interval_s
        self._backoff = backoff
        self.desired: DesiredState | None = None
        self.server_desired_version = 0
        self.fl: FLWorker | None = None
        """Trains federated rounds, when this device takes part in them."""
        self._declined: FLAssignment | None = None

    # -- desired state ------------------------------------------------------------------------

    def run_desired_state(self) -> None:
        """Long-poll the desired state, verify it, and reconcile, until stopped."""
        backoff, outage = self._backoff(), _Outage("desired-state request")
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                delay = self.poll_desired_state(backoff, outage)
            except Exception as exc:  # a bug must not stop updates for good: report, back off
                if self.stop.is_set():
                    return
                log.exception("desired-state loop")
                self.events.emit("error", ok=False, detail=f"desired-state loop: {exc!r}")
                delay = backoff.next_delay()
            if delay is None:  # answered: pace only a server that ignores ?wait
                delay = max(0.0, _MIN_POLL_INTERVAL_S - (time.monotonic() - started))
            if self.stop.wait(delay):
                return

    def poll_desired_state(self, backoff: Backoff, outage: _Outage | None = None) -> float | None:
        """One pull and reconcile; return the backoff delay after a failure, else ``None``."""
        known = self.desired.version if self.desired is not None else None
        try:
            signed = self.uplink.desired_state(known_version=known, wait_s=self.poll_wait_s)
        except UplinkError as exc:
            delay = backoff.next_delay()
            if outage is not None:
                outage.failed(exc, delay)
            return delay
        if outage is not None:
            outage.succeeded()
        if signed is not None:
            try:
                desired = self.trust.verify_desired_state(signed, self.device_id)
            except VerificationError as exc:
                self.events.emit(
                    "verification_failed", ok=False, detail=f"desired state refused: {exc}"
                )
                return backoff.next_delay()
            if self.desired is None or desired.version != self.desired.version:
                model = desired.model
                self.events.emit(
                    "desired_state",
                    model=model.name if model else "",
                    version=model.version if model else "",
                    release=model.release if model else 0,
                    detail=f"desired-state version {desired.version}",
                )
            self.desired = desired
        backoff.reset()
        if self.desired is not None:
            if self.shadow is not None:  # first, so a promotion spools its last window
                self.shadow.reconcile(self.desired, self.trust)
            self.updater.reconcile(self.desired, self.trust)
            if self.fl is not None:
                self.fl.offer(self.desired.fl)
            elif self.desired.fl is not None and self.desired.fl != self._declined:
                self._declined = self.desired.fl
                self._decline_round(self.desired.fl)
        return None

    def _decline_round(self, assignment: FLAssignment) -> None:
        """Say at once that this device trains no federated task (the round goes on)."""
        try:
            self.uplink.fl_decline(
                assignment.job_id,
                assignment.round,
                "federated learning is not enabled on this device (EDGEFLEET_FL_TASKS)",
            )
        except UplinkError as exc:
            log.info("could not decline a federated round: %s", exc)

    def run_activations(self, tick_s: float = 0.5) -> None:
        """Retry a deferred activation every ``tick_s`` and whenever woken, until stopped."""
        while not self.stop.is_set():
            self.wake.wait(tick_s)
            self.wake.clear()
            if self.stop.is_set():
                return
            try:
                self.updater.retry_deferred()
            except Exception as exc:  # keep serving; report the bug
                log.exception("activation loop")
                self.events.emit("error", ok=False, detail=f"activation loop: {exc!r}")
                self.stop.wait(1.0)

    # -- heartbeats and uploads ---------------------------------------------------------------

    def run_heartbeats(self) -> None:
        """Send a heartbeat every interval (sooner retries after failures), until stopped."""
        backoff, outage = self._backoff(), _Outage("heartbeat")
        delay = 0.0
        while not self.stop.wait(delay):
            try:
                self.heartbeat()
            except UplinkError as exc:
                delay = min(self.heartbeat_interval_s, backoff.next_delay())
                outage.failed(exc, delay)
                continue
            outage.succeeded()
            backoff.reset()
            delay = self.heartbeat_interval_s

    def heartbeat(self) -> int:
        """Send one heartbeat; return the server's newest desired-state version."""
        ack = self.uplink.heartbeat(
            Heartbeat(
                inventory=self.inventory(),
                state=self.updater.phase,
                desired_version=self.updater.state.desired_version,
                held_since=self.held_since(),
            )
        )
        self.server_desired_version = ack.desired_version
        return ack.desired_version

    def run_uploads(self) -> None:
        """Upload spooled telemetry and events every interval, until stopped."""
        backoff, outage = self._backoff(), _Outage("telemetry upload")
        delay = 0.0
        while not self.stop.wait(delay):
            try:
                self.uploader.drain()
            except UplinkError as exc:
                delay = backoff.next_delay()
                outage.failed(exc, delay)
                continue
            outage.succeeded()
            backoff.reset()
            delay = self.upload_interval_s
