"""Shadow candidates: fetched and checked like an install, run beside the active model, reported.

When a desired state carries a :class:`~edgefleet.protocol.v1.ShadowSpec`, the candidate goes
through the same TUF fetch, compatibility checks, loading and golden smoke test as an install,
but its release is not accepted and it is never served. A
:class:`~edgefleet.runtime.shadow.ShadowRunner` taps the active model's serving name and runs
the candidate on a ``sample_rate`` share of the answered inputs, off the request path. Every
telemetry window, the candidate's own telemetry and its comparison with the active model go to
the spool as ``role="shadow"`` windows. A later desired state without the shadow (or with
another, or promoting it to ``model``) stops it; its last window is spooled first.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

from edgefleet.agent.budget import BudgetSpentError
from edgefleet.agent.checks import prepare_model, verified_problem
from edgefleet.agent.reporter import EventLog, SpoolLike
from edgefleet.agent.updater import ModelSource, Updater
from edgefleet.errors import (
    CompatibilityError,
    ConfigurationError,
    EdgefleetError,
    ModelLoadError,
    SmokeTestError,
    UplinkError,
    VerificationError,
)
from edgefleet.protocol.v1 import (
    DesiredModel,
    DesiredState,
    ShadowComparison,
    ShadowSpec,
    TelemetryWindow,
)
from edgefleet.runtime import ModelRepository
from edgefleet.runtime.shadow import OutputComparator, ShadowRunner, top1_disagreement

__all__ = ["ShadowManager"]

log = logging.getLogger(__name__)


class ShadowManager:
    """Starts, reports and stops the shadow candidate a desired state names.

    Parameters
    ----------
    repository
        The served models; the runner taps the active model's name here.
    updater
        Knows the active model (name and version).
    models_dir
        Only verified files there are loaded.
    events
        ``shadow_started``, ``shadow_stopped`` and the candidate's check results.
    spool, spool_lock
        Where ``role="shadow"`` windows go.
    load_options
        As for installs; the candidate runs on one intra-op thread, to leave the cores to the
        active model.
    comparator
        How outputs are compared (top-1 of the first output by default).
    queue_size
        Samples waiting for the shadow at most; more are dropped and counted.
    """

    def __init__(
        self,
        *,
        repository: ModelRepository,
        updater: Updater,
        models_dir: Path,
        events: EventLog,
        spool: SpoolLike,
        spool_lock: threading.Lock,
        load_options: dict[str, Any] | None = None,
        comparator: OutputComparator = top1_disagreement,
        queue_size: int = 64,
    ) -> None:
        self.repository = repository
        self.updater = updater
        self.models_dir = models_dir
        self.events = events
        self.spool = spool
        self.spool_lock = spool_lock
        self.load_options = {**(load_options or {}), "intra_op_threads": 1}
        self.comparator = comparator
        self.queue_size = queue_size
        self._lock = threading.RLock()
        self._runner: ShadowRunner | None = None
        self._spec: ShadowSpec | None = None
        self._tapped = ""
        self._refused: set[tuple[int, str]] = set()  # (desired version, sha256) that failed
        self._errors_seen = 0

    @property
    def running(self) -> ShadowSpec | None:
        """The shadow that runs now."""
        return self._spec if self._runner is not None else None

    @property
    def runner(self) -> ShadowRunner | None:
        """The runner of the shadow that runs now."""
        return self._runner

    def reconcile(self, desired: DesiredState, source: ModelSource) -> None:
        """Run the shadow ``desired`` names (or none); never raises for the candidate's faults."""
        spec = desired.shadow
        self.updater.set_policy(desired.policy)  # the candidate's bytes count against the budget
        promoted = (
            spec is not None
            and desired.model is not None
            and desired.model.sha256 == spec.model.sha256
        )
        with self._lock:
            active = self.updater.state.active
            serving = spec is not None and active is not None and active.sha256 == spec.model.sha256
            running = self.running
            if running is not None and (
                spec is None or promoted or serving or running.model.sha256 != spec.model.sha256
            ):
                why = (
                    "promoted to the desired model" if promoted or serving else "no longer desired"
                )
                self.stop(why)
            if spec is None or promoted or serving:
                return  # nothing to shadow, or the candidate is (about to be) the active model
            if self._runner is not None:
                self._runner.sample_rate = spec.sample_rate
                self._spec = spec
                if active is not None and active.name != self._tapped:
                    self._tap(active.name)
                return
            if active is None or (desired.version, spec.model.sha256) in self._refused:
                return  # nothing to compare with, or it failed for this desired state
            self._start(desired.version, spec, source, active.name)

    def _start(self, version: int, spec: ShadowSpec, source: ModelSource, active: str) -> None:
        target = spec.model

        def on_event(kind: str, detail: str) -> None:
            self._report(kind, target, f"shadow: {detail}")

        try:
            verified = source.fetch_model(target, on_event=on_event)
            problem = verified_problem(verified, target, self.models_dir)
            if problem:
                raise VerificationError(problem)
            model, cases = prepare_model(verified, target, self.load_options)
        except SmokeTestError as exc:
            self._refuse(version, target, "smoke_test_failed", exc)
            return
        except VerificationError as exc:
            self._refuse(version, target, "verification_failed", exc)
            return
        except (CompatibilityError, ModelLoadError, ConfigurationError) as exc:
            self._refuse(version, target, "incompatible", exc)
            return
        except BudgetSpentError as exc:
            self._report("deferred", target, f"shadow: {exc}")
            return
        except UplinkError as exc:  # retried with the next desired-state poll
            log.warning("cannot fetch shadow candidate %s: %s", target.target, exc)
            return
        if cases is not None:
            self._report("smoke_test_passed", target, f"shadow: {cases} golden cases match")
        runner = ShadowRunner(
            model, spec.sample_rate, comparator=self.comparator, queue_size=self.queue_size
        )
        runner.start()
        self._runner, self._spec, self._errors_seen = runner, spec, 0
        self._tap(active)
        current = self.updater.state.active
        beside = f" beside version {current.version}" if current is not None else ""
        self._report(
            "shadow_started",
            target,
            f"running on {spec.sample_rate:.1%} of live inferences{beside}",
        )

    def _refuse(self, version: int, target: DesiredModel, kind: str, exc: Exception) -> None:
        self._refused.add((version, target.sha256))
        self._report(kind, target, f"shadow candidate refused: {exc}", ok=False)

    def _tap(self, name: str) -> None:
        if self._tapped and self._tapped != name:
            self.repository.set_tap(self._tapped, None)
        self._tapped = name
        self.repository.set_tap(name, self._runner)

    def close_window(self) -> list[TelemetryWindow]:
        """Spool the shadow's telemetry and comparisons since the last call (none: not running)."""
        with self._lock:
            runner, spec = self._runner, self._spec
            if runner is None or spec is None:
                return []
            snapshot = runner.shadow.telemetry.snapshot(reset=True)
            tallies = runner.take()
            errors = runner.errors
            if errors > self._errors_seen:
                self._report(
                    "error",
                    spec.model,
                    f"shadow: the candidate failed on {errors - self._errors_seen} samples "
                    f"(last: {runner.last_error}); the active model is not affected",
                    ok=False,
                )
                self._errors_seen = errors
            calls = snapshot.count + snapshot.errors + snapshot.rejected
            if not tallies and not calls:
                return []
            active = self.updater.state.active
            comparisons = [
                ShadowComparison(
                    active_version=t.active_version,
                    compared=t.compared,
                    disagreed=t.disagreed,
                    confidence_delta_sum=t.confidence_delta_sum,
                )
                for t in tallies
            ] or [
                ShadowComparison(
                    active_version=active.version if active is not None else "",
                    compared=0,
                    disagreed=0,
                )
            ]
            windows = []
            for i, comparison in enumerate(comparisons):
                # One window per active version compared with; the telemetry goes in the first.
                snap = snapshot if i == 0 else runner.shadow.telemetry.snapshot(reset=True)
                windows.append(
                    TelemetryWindow(
                        window_id=uuid.uuid4().hex,
                        model=snap.model,
                        version=snap.version,
                        started_at=snap.started_at,
                        ended_at=snap.ended_at,
                        snapshot=snap.to_dict(),
                        role="shadow",
                        shadow=comparison,
                    )
                )
            with self.spool_lock:
                for window in windows:
                    self.spool.add_window(window)
            return windows

    def stop(self, reason: str) -> None:
        """Stop the running shadow (if any): untap, spool its last window, close the model."""
        with self._lock:
            runner, spec = self._runner, self._spec
            if runner is None or spec is None:
                return
            self.repository.set_tap(self._tapped, None)
            self._tapped = ""
            try:
                self.close_window()
            except (EdgefleetError, OSError) as exc:
                log.error("cannot spool the shadow's last window: %s", exc)
            self._runner = self._spec = None
            runner.stop()
            self._report(
                "shadow_stopped",
                spec.model,
                f"{reason}; {runner.dropped} samples dropped (queue full), {runner.errors} failed",
            )

    def _report(self, kind: str, subject: DesiredModel, detail: str, *, ok: bool = True) -> None:
        self.events.emit(
            kind,
            model=subject.name,
            version=subject.version,
            release=subject.release,
            ok=ok,
            detail=detail,
        )
