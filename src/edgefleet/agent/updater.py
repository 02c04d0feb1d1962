"""Apply a desired state: fetch, check, smoke-test, hot-swap, watch, and roll back locally.

Order of one update (every step is reported as an :class:`~edgefleet.protocol.v1.Event`):

1. ``fetch_model`` through TUF (``download_started``, ``download_finished``, ``verified``;
   ``verification_failed`` on any trust error);
2. compatibility with this machine (``incompatible``), then loading with ONNX Runtime;
3. the golden-input smoke test when the release has golden data (``smoke_test_passed`` or
   ``smoke_test_failed``);
4. hot swap under the model's registry name, ``state.json`` written, the release accepted
   (``activated``);
5. the health watch; a failing model is swapped back to the previous one (``rolled_back``),
   a healthy one is reported (``health_passed``).

On a failure at any step the current model keeps serving. A desired model that failed is not
tried again before ``retry_failed_s * 2**(n-1)`` (capped, jittered) unless a new desired-state
version arrives. A desired state without a model keeps the current one serving.

Between 1 and 2 the :class:`~edgefleet.agent.gate.ActivationGate` may defer the activation (an
update hold, outside the maintenance windows), and a spent daily download budget defers the
download itself (``deferred``, once per model and reason). The deferred desired state is tried
again by :meth:`Updater.retry_deferred` (called about every second, and at once when the hold
is released), with the verified file kept, so no new desired-state version is needed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgefleet.agent.budget import BudgetSpentError, DownloadBudget
from edgefleet.agent.checks import (
    load_record,
    prepare_model,
    release_temperature,
    verified_problem,
)
from edgefleet.agent.gate import ActivationGate, Deferral
from edgefleet.agent.health import HealthPolicy, HealthVerdict, HealthWatch
from edgefleet.agent.reporter import EventLog, WindowCollector
from edgefleet.agent.serving import swap_in
from edgefleet.agent.state import AgentState, FailureRecord, ModelRecord, StateStore
from edgefleet.agent.trust import VerifiedModel
from edgefleet.errors import (
    CompatibilityError,
    ConfigurationError,
    EdgefleetError,
    ModelLoadError,
    SmokeTestError,
    UplinkError,
    VerificationError,
)
from edgefleet.protocol.v1 import ActiveModel, DesiredModel, DesiredState, UpdatePolicy
from edgefleet.runtime import ModelRepository, Servable

__all__ = ["ModelSource", "Updater"]

log = logging.getLogger(__name__)

EventCallback = Callable[[str, str], None]


class ModelSource(Protocol):
    """Where verified models come from (:class:`edgefleet.agent.trust.AgentTrust`)."""

    def fetch_model(
        self, desired: DesiredModel, on_event: EventCallback | None = None
    ) -> VerifiedModel:
        """Download and verify the desired model's file (and golden data)."""
        ...

    def accept_release(self, name: str, release: int) -> None:
        """Remember that ``release`` of ``name`` was activated (refuse lower ones later)."""
        ...


@dataclass(frozen=True)
class _Deferred:
    desired: DesiredState
    target: DesiredModel
    source: ModelSource
    verified: VerifiedModel | None


class Updater:
    """Owns the served model: installs desired models, watches them, rolls back.

    Parameters
    ----------
    repository
        The repository the local OIP server serves from.
    store
        ``state.json``.
    models_dir
        Where verified model files live; only files there are ever loaded.
    events
        Where the steps are reported.
    collector
        Telemetry windows of the active model (also the health watch's data).
    policy
        Health watch thresholds.
    load_options
        Keyword options for :func:`edgefleet.runtime.load` (not ``name`` or ``version``).
    retry_base_s, retry_max_s
        Wait before a failed desired model is tried again: doubles per failure, capped.
    gate
        Defers activations (update hold, maintenance windows); none: never deferred.
    budget
        The daily download budget; its limit is set from each desired state's policy.
    """

    def __init__(
        self,
        *,
        repository: ModelRepository,
        store: StateStore,
        models_dir: Path,
        events: EventLog,
        collector: WindowCollector,
        policy: HealthPolicy,
        load_options: dict[str, Any] | None = None,
        retry_base_s: float = 60.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        gate: ActivationGate | None = None,
        budget: DownloadBudget | None = None,
    ) -> None:
        self.repository = repository
        self.gate = gate
        self.budget = budget
        self.store = store
        self.models_dir = models_dir
        self.events = events
        self.collector = collector
        self.policy = policy
        self.load_options = dict(load_options or {})
        self.retry_base_s = retry_base_s
        self.retry_max_s = max(retry_max_s, retry_base_s)
        self.clock = clock
        self.monotonic = monotonic
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._state = AgentState()
        self._watch: HealthWatch | None = None
        self._apply = threading.Lock()  # one reconcile (or retry) at a time
        self._deferred: _Deferred | None = None
        self._deferred_noted: tuple[str, int, str] | None = None
        self.phase = "idle"

    # -- what is served -----------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        """The state as last written to ``state.json``."""
        return self._state

    @property
    def watching(self) -> bool:
        """Whether a health watch runs."""
        return self._watch is not None

    def active_model(self) -> ActiveModel | None:
        """The active model for heartbeats."""
        active = self._state.active
        if active is None:
            return None
        return ActiveModel(
            name=active.name, version=active.version, release=active.release, sha256=active.sha256
        )

    def restore(self, *, crashed: bool = False) -> Servable | None:
        """Serve the model named in ``state.json`` (before anything touches the network).

        With ``crashed`` (the previous run ended without a clean stop) while the active model
        was still under its health watch, the previous model is restored instead and the
        active one reported as rolled back. A clean restart resumes the watch (without a
        latency baseline).
        """
        with self._lock:
            self._state = state = self.store.load()
            if state.active is None:
                return None
            if crashed and state.watching_since is not None and state.previous is not None:
                self._rollback_locked("the agent stopped unexpectedly during the health watch")
                return self.collector.servable
            for record in (state.active, state.previous):
                if record is None:
                    continue
                try:
                    servable = load_record(record, self.models_dir, self.load_options)
                except (EdgefleetError, OSError) as exc:
                    self._report("error", record, f"cannot restore the model: {exc}", ok=False)
                    continue
                swap_in(self.repository, self.collector, servable, count=False)
                if record is not state.active:
                    self._save(AgentState(active=record, desired_version=state.desired_version))
                elif state.watching_since is not None:
                    self._watch = HealthWatch(self.policy, None, self.monotonic())
                    self.phase = "watching"
                return servable
            self._save(state.model_copy(update={"active": None, "previous": None}))
            return None

    # -- applying a desired state ---------------------------------------------------------

    @property
    def deferred(self) -> DesiredModel | None:
        """The desired model whose download or activation waits, if one does."""
        deferred = self._deferred
        return deferred.target if deferred is not None else None

    def set_policy(self, policy: UpdatePolicy | None) -> None:
        """Apply a desired state's download budget (``None``: no budget) to later downloads."""
        if self.budget is not None:
            self.budget.limit = policy.daily_download_bytes if policy is not None else None

    def reconcile(self, desired: DesiredState, source: ModelSource) -> bool:
        """Bring the served model in line with ``desired``; return whether a model was activated.

        Never raises for a failed step: the step is reported and the current model stays. A
        deferred download or activation is remembered for :meth:`retry_deferred`.
        """
        with self._apply:
            return self._reconcile(desired, source)

    def retry_deferred(self) -> bool:
        """Try the deferred desired state again (the gate may have opened); return if activated."""
        deferred = self._deferred
        if deferred is None:
            return False
        with self._apply:
            if self._deferred is not deferred:  # a reconcile ran meanwhile
                return False
            return self._reconcile(deferred.desired, deferred.source)

    def _reconcile(self, desired: DesiredState, source: ModelSource) -> bool:
        before, self._deferred = self._deferred, None
        with self._lock:
            if desired.version != self._state.desired_version:
                self._save(self._state.model_copy(update={"desired_version": desired.version}))
            target = desired.model
            if target is None or self._is_active(target, source):
                self._end_deferral()
                return False
            failure = self._state.failures.get(_key(desired.version, target.sha256))
            if failure is not None and self.clock() < failure.retry_at:
                self._end_deferral()
                return False
        self.set_policy(desired.policy)
        verified = None
        if before is not None and (before.target.sha256, before.target.release) == (
            target.sha256,
            target.release,
        ):
            verified = before.verified  # downloaded and verified ahead: not fetched again
        if verified is None:
            self.phase = "downloading"
            try:
                if self.budget is not None and self.budget.remaining() == 0:
                    raise self.budget.spent_error(f"model {target.name} version {target.version}")
                verified = source.fetch_model(target, on_event=self._on_trust_event(target))
            except BudgetSpentError as exc:
                self._defer(desired, target, source, None, Deferral("budget", str(exc)))
                return False
            except VerificationError as exc:
                self._fail(desired.version, target, "verification_failed", str(exc))
                return False
            except UplinkError as exc:
                self._fail(desired.version, target, "error", f"download failed: {exc}")
                return False
            finally:
                self.phase = "watching" if self._watch else "idle"
        deferral = self.gate.deferral(desired.policy) if self.gate is not None else None
        if deferral is not None:
            self._defer(desired, target, source, verified, deferral)
            return False
        self._end_deferral()
        return self.install(verified, target, desired.version, on_accepted=source.accept_release)

    def _defer(
        self,
        desired: DesiredState,
        target: DesiredModel,
        source: ModelSource,
        verified: VerifiedModel | None,
        deferral: Deferral,
    ) -> None:
        self._deferred = _Deferred(desired, target, source, verified)
        self.phase = "deferred"
        noted = (target.sha256, target.release, deferral.kind)
        if noted != self._deferred_noted:  # once per model and reason
            self._deferred_noted = noted
            self._report("deferred", target, deferral.detail)

    def _end_deferral(self) -> None:
        self._deferred_noted = None
        if self.phase == "deferred":
            self.phase = "watching" if self._watch else "idle"

    def install(
        self,
        verified: VerifiedModel,
        desired: DesiredModel,
        desired_version: int,
        *,
        on_accepted: Callable[[str, int], None] | None = None,
    ) -> bool:
        """Check, smoke-test and activate a verified model; return whether it was activated."""
        problem = verified_problem(verified, desired, self.models_dir)
        if problem:
            self._fail(desired_version, desired, "verification_failed", problem)
            return False
        self.phase = "installing"
        try:
            try:
                model, cases = prepare_model(verified, desired, self.load_options)
            except SmokeTestError as exc:
                self._fail(desired_version, desired, "smoke_test_failed", str(exc))
                return False
            except (CompatibilityError, ModelLoadError, ConfigurationError) as exc:
                self._fail(desired_version, desired, "incompatible", str(exc))
                return False
            if cases is not None:
                self._report("smoke_test_passed", desired, f"{cases} golden cases match")
            with self._lock:
                previous = self._state.active
                baseline = swap_in(self.repository, self.collector, model)
                record = _record(desired, verified)
                keep = previous if previous and previous.sha256 != record.sha256 else None
                self._save(
                    AgentState(
                        active=record,
                        previous=keep or self._state.previous,
                        desired_version=max(desired_version, self._state.desired_version),
                        watching_since=self.clock(),
                        failures={
                            k: v
                            for k, v in self._state.failures.items()
                            if k != _key(desired_version, desired.sha256)
                        },
                    )
                )
                if on_accepted is not None:
                    self._accept(on_accepted, desired)
                self._watch = HealthWatch(self.policy, baseline, self.monotonic())
            self._report("activated", desired, f"serving {verified.target} as {desired.name!r}")
            return True
        finally:
            self.phase = "watching" if self._watch else "idle"

    # -- health watch and rollback ------------------------------------------------------------

    def check_health(self) -> HealthVerdict | None:
        """Judge the active model if it is watched; roll back or report the end of the watch."""
        watch = self._watch
        if watch is None:
            return None
        verdict = watch.evaluate(self.collector.since_attach(), self.monotonic())
        if not verdict.done:
            return verdict
        with self._lock:
            if self._watch is not watch:  # replaced meanwhile by an install or a rollback
                return None
            if verdict.status == "failed":
                self._rollback_locked(verdict.reason)
            else:
                self._watch = None
                self.phase = "idle"
                self._save(self._state.model_copy(update={"watching_since": None}))
                active = self._state.active
                if active is not None:
                    self._report("health_passed", active, verdict.reason)
        return verdict

    def rollback(self, reason: str) -> bool:
        """Swap back to the previous model now; return whether it happened."""
        with self._lock:
            return self._rollback_locked(reason)

    def _rollback_locked(self, reason: str) -> bool:
        self._watch = None
        self.phase = "idle"
        state = self._state
        bad, good = state.active, state.previous
        if bad is None:
            return False
        state = state.with_failure(
            _key(state.desired_version, bad.sha256), self._next_failure(state, bad.sha256, reason)
        )
        if good is None:
            self._save(state.model_copy(update={"watching_since": None}))
            self._report("rolled_back", bad, f"{reason}; no previous model, kept serving", ok=False)
            return False
        try:
            servable = load_record(good, self.models_dir, self.load_options)
        except (EdgefleetError, OSError) as exc:
            self._save(state.model_copy(update={"watching_since": None}))
            self._report(
                "rolled_back", bad, f"{reason}; the previous model failed: {exc}", ok=False
            )
            return False
        swap_in(self.repository, self.collector, servable, rollback=True)
        self._save(
            state.model_copy(update={"active": good, "previous": None, "watching_since": None})
        )
        self._report("rolled_back", bad, f"{reason}; back to {good.name}:{good.version}", ok=False)
        return True

    # -- helpers ------------------------------------------------------------------------------

    def _accept(self, accept: Callable[[str, int], None], desired: DesiredModel) -> None:
        try:
            accept(desired.name, desired.release)
        except (EdgefleetError, OSError) as exc:  # the model runs; only the counter is stale
            log.error("cannot record release %d of %s: %s", desired.release, desired.name, exc)

    def _is_active(self, target: DesiredModel, source: ModelSource) -> bool:
        active = self._state.active
        if active is None or (active.name, active.sha256) != (target.name, target.sha256):
            return False
        if target.release > active.release:  # the same file published again as a new release
            # (a deliberate return to it, or another version name for identical bytes): the
            # served model stays, and the device reports the identity it was asked to run.
            source.accept_release(target.name, target.release)
            updated = active.model_copy(
                update={"release": target.release, "version": target.version}
            )
            self._save(self._state.model_copy(update={"active": updated}))
        return True

    def _next_failure(self, state: AgentState, sha256: str, reason: str) -> FailureRecord:
        before = state.failures.get(_key(state.desired_version, sha256))
        return FailureRecord.after(
            before,
            reason,
            now=self.clock(),
            base=self.retry_base_s,
            cap=self.retry_max_s,
            rng=self._rng,
        )

    def _fail(self, desired_version: int, target: DesiredModel, kind: str, detail: str) -> None:
        with self._lock:
            state = self._state.model_copy(update={"desired_version": desired_version})
            failure = self._next_failure(state, target.sha256, detail)
            self._save(self._state.with_failure(_key(desired_version, target.sha256), failure))
        self._report(kind, target, detail, ok=False)

    def _on_trust_event(self, target: DesiredModel) -> EventCallback:
        def on_event(kind: str, detail: str) -> None:
            self._report(kind, target, detail)

        return on_event

    def _report(
        self, kind: str, subject: DesiredModel | ModelRecord, detail: str, *, ok: bool = True
    ) -> None:
        self.events.emit(
            kind,
            model=subject.name,
            version=subject.version,
            release=subject.release,
            ok=ok,
            detail=detail,
        )

    def _save(self, state: AgentState) -> None:
        self.store.save(state)
        self._state = state


def _key(desired_version: int, sha256: str) -> str:
    return f"{desired_version}:{sha256}"


def _record(desired: DesiredModel, verified: VerifiedModel) -> ModelRecord:
    return ModelRecord(
        name=desired.name,
        version=desired.version,
        release=verified.release,
        sha256=verified.sha256,
        path=str(verified.path.resolve()),
        temperature=release_temperature(verified.custom),
    )
