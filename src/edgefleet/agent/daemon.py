"""The ``edgefleet agent`` process: wires the parts together and runs them in threads.

Start-up order: the data dir is checked and locked before anything in it is read or written
(one agent per data dir, :mod:`edgefleet.agent.datadir`); then the model named in
``state.json`` is loaded and served, so local apps get answers even while the control plane is
unreachable; then the device enrols (once) or reuses its credential, and the loops start.
Threads: the OIP accept loop, telemetry windows and the health watch, and (once enrolled)
desired-state pulls, heartbeats, uploads and the retry of deferred activations. The local
server also answers the update hold (``/agent/v1/hold``).

Stopping (SIGTERM or SIGINT, see :meth:`Agent.run`): the local server stops accepting and lets
running requests finish, the open telemetry window goes to the spool, threads are joined (a
long poll in flight is abandoned, not awaited), files are closed. A second signal during the
stop ends the process at once. As in :mod:`edgefleet.runtime.oip.serve`, the main thread waits
on a pipe registered with :func:`signal.set_wakeup_fd`, so a signal delivered to any thread
wakes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from edgefleet.agent._files import remove_temporaries
from edgefleet.agent.backoff import Backoff
from edgefleet.agent.budget import DownloadBudget
from edgefleet.agent.datadir import DataDirLock
from edgefleet.agent.enrollment import StoppedError, ensure_enrolled, stored_credential
from edgefleet.agent.fl import FLWorker, parse_partition
from edgefleet.agent.gate import ActivationGate
from edgefleet.agent.health import HealthPolicy
from edgefleet.agent.hold import HOLD_PATH, UpdateHold, hold_route
from edgefleet.agent.inventory import collect_inventory
from edgefleet.agent.reporter import EventLog, Uploader, WindowCollector
from edgefleet.agent.settings import AgentSettings
from edgefleet.agent.shadow import ShadowManager
from edgefleet.agent.spool import Spool
from edgefleet.agent.state import RunMarker, StateStore
from edgefleet.agent.sync import ControlLoops
from edgefleet.agent.trust import AgentTrust
from edgefleet.agent.updater import Updater
from edgefleet.agent.uplink import Uplink
from edgefleet.errors import BindError, EdgefleetError
from edgefleet.protocol.v1 import Inventory
from edgefleet.runtime import ModelRepository
from edgefleet.runtime.oip import HTTPServer, InferenceService, make_server

__all__ = ["Agent", "BindError"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_JOIN_S = 5.0


def _noted(signum: int, frame: FrameType | None) -> None:
    """Keep the default action away; the signal number reaches the wake-up pipe."""


class Agent:
    """One device agent. :meth:`run` for the process; :meth:`start` and :meth:`stop` for tests.

    Parameters
    ----------
    settings
        The process settings.
    announce
        Receives the lines meant for the operator (the serving address, enrolment, stop).
    """

    def __init__(self, settings: AgentSettings, announce: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.announce = announce
        self.stop_event = threading.Event()
        self.fatal: BaseException | None = None
        self.repository = ModelRepository()
        self.loops: ControlLoops | None = None
        self.device_id: str | None = None
        self._threads: list[threading.Thread] = []
        self._wake: Callable[[], None] = lambda: None
        self.activate = threading.Event()  # set: retry a deferred activation now
        self.shadow: ShadowManager | None = None
        self._spool_lock = threading.Lock()
        self._marker = RunMarker(settings.data_dir / "agent.running")
        self._server: HTTPServer | None = None
        self._service: InferenceService | None = None
        self._uplink: Uplink | None = None
        self._spool: Spool | None = None
        self._running = False
        self._lock: DataDirLock | None = None
        s = settings
        self.policy = HealthPolicy(
            period_s=s.health_watch_s,
            error_rate_limit=s.error_rate_limit,
            latency_factor=s.latency_factor,
            latency_margin_s=s.latency_margin_ms / 1e3,
            min_requests=s.health_min_requests,
            latency_window=s.latency_window,
            latency_windows=s.latency_windows,
        )

    @property
    def serve_url(self) -> str:
        """Base URL of the local OIP server (after :meth:`start`)."""
        assert self._server is not None, "the agent has not started"
        return self._server.url

    def inventory(self) -> Inventory:
        """The inventory of this device now."""
        return collect_inventory(
            self.settings.data_dir,
            labels=self.settings.labels,
            active_model=self.updater.active_model(),
            fl_tasks=self.settings.fl_tasks,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the stored model, then start the threads; returns at once.

        The serving address is announced at once, or on a first start once the device has
        enrolled (so ``credential.json`` exists when the line appears).

        Raises
        ------
        DataDirInUseError
            Another agent holds the data dir's lock (nothing was read or written).
        BindError
            The serve address cannot be bound.
        ConfigurationError
            The data dir or the stored credential is unusable.
        """
        if self._lock is not None and self._lock.held:
            raise RuntimeError("the agent has already started")
        # Nothing in the data dir is read or written before it is checked and locked.
        self._lock = DataDirLock.acquire(self.settings.data_dir)
        try:
            self._start()
        except BaseException:
            self.stop(undo_created=True)
            raise

    def _start(self) -> None:
        s = self.settings
        for directory in (s.models_dir, s.downloads_dir, s.trust_dir):
            directory.mkdir(exist_ok=True)
        s.data_dir.chmod(0o700)
        # Not enrolled and nothing to enrol with: fail before serving.
        enrolled = stored_credential(s) is not None
        for path in (s.state_path, s.credential_path):
            remove_temporaries(path)  # left by a write the previous run was killed in
        crashed = self._marker.begin()
        self._running = True
        self._spool = spool = Spool(s.spool_path, budget_bytes=s.spool_budget_bytes)
        self.events = EventLog(spool, self._spool_lock)
        self.collector = WindowCollector(spool, self._spool_lock)
        self.hold = UpdateHold(
            s.hold_path, self.events, max_s=s.hold_max_s, on_release=self.activate.set
        )
        self.budget = DownloadBudget(s.budget_path)
        self.updater = Updater(
            repository=self.repository,
            store=StateStore(s.state_path),
            models_dir=s.models_dir,
            events=self.events,
            collector=self.collector,
            policy=self.policy,
            load_options=s.load_options(),
            retry_base_s=s.retry_failed_s,
            retry_max_s=s.backoff_max_s,
            gate=ActivationGate(self.hold),
            budget=self.budget,
        )
        self.updater.restore(crashed=crashed)
        self.shadow = ShadowManager(
            repository=self.repository,
            updater=self.updater,
            models_dir=s.models_dir,
            events=self.events,
            spool=spool,
            spool_lock=self._spool_lock,
            load_options=s.load_options(),
        )
        try:
            self._server, self._service = make_server(
                self.repository,
                s.serve_host,
                s.serve_port,
                max_body_bytes=s.max_body_bytes,
                routes={HOLD_PATH: hold_route(self.hold)},
            )
        except OSError as exc:
            raise BindError(f"cannot listen on {s.serve}: {exc.strerror or exc}") from exc
        self._thread("edgefleet-accept", self._server.serve_forever)
        if enrolled:  # a first start announces itself once enrolment succeeded
            self._announce_serving()
        self._thread("edgefleet-telemetry", self._telemetry_loop)
        self._thread("edgefleet-connect", self._connect)

    def stop(self, *, undo_created: bool = False) -> None:
        """Stop gracefully (idempotent): drain requests, spool the open window, close files.

        The data dir's lock is released last; ``undo_created`` (a failed start) also leaves
        the data dir as the start found it (see :meth:`DataDirLock.release`).
        """
        self.stop_event.set()
        self.activate.set()
        if self._service is not None:
            self._service.ready = False
        if self._server is not None:
            self._server.shutdown(self.settings.shutdown_grace_s)
        if self._uplink is not None:
            self._uplink.interrupt()  # ends a long poll in flight
        deadline = time.monotonic() + _JOIN_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.info("not waiting for %s", ", ".join(alive))
        if self._uplink is not None:
            self._uplink.close()  # after the threads, so no request is cut off mid-flight
        if self._spool is not None:
            try:  # the open window goes to the spool, to be uploaded after the next start
                if self.shadow is not None:
                    self.shadow.stop("the agent stops")
                self.collector.close_window()
            except Exception:
                log.exception("cannot spool the last telemetry window")
        self.repository.close(drain_timeout=self.settings.shutdown_grace_s)
        if self._spool is not None:
            with self._spool_lock:
                self._spool.close()
            self._spool = None
        if self._running:
            self._marker.end()
            self._running = False
        if self._lock is not None:
            self._lock.release(undo_created=undo_created)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (main thread only); re-raise a fatal thread error."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous = {sig: signal.signal(sig, _noted) for sig in STOP_SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self._wake = lambda: _write(wake_write)
        try:
            self.start()
            while not set(os.read(wake_read, 64)) & {*STOP_SIGNALS, 0}:
                pass
            for sig in STOP_SIGNALS:  # a second signal ends the process without waiting
                signal.signal(sig, signal.SIG_DFL)
        finally:
            self.stop()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)
            os.close(wake_read)
            os.close(wake_write)
        if self.fatal is not None:
            raise self.fatal
        self.announce("stopped")

    # -- threads ------------------------------------------------------------------------------

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        def body() -> None:
            try:
                target()
            except BaseException as exc:
                if not self.stop_event.is_set():
                    if isinstance(exc, EdgefleetError):  # reported by the CLI, no traceback
                        log.debug("%s stopped: %s", name, exc)
                    else:
                        log.exception("%s failed", name)
                    self.fatal = self.fatal or exc
                    self._wake()

        thread = threading.Thread(target=body, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _telemetry_loop(self) -> None:
        window_s = self.settings.telemetry_window_s
        tick = min(0.5, window_s)
        next_window = time.monotonic() + window_s
        while not self.stop_event.wait(tick):
            try:
                self.updater.check_health()
                self.hold.check_overdue()
                if time.monotonic() >= next_window:
                    next_window = time.monotonic() + window_s
                    self.collector.close_window()
                    if self.shadow is not None:
                        self.shadow.close_window()
            except Exception as exc:  # keep serving and recording; report the bug
                log.exception("telemetry loop")
                self.events.emit("error", ok=False, detail=f"telemetry loop: {exc!r}")

    def _announce_serving(self) -> None:
        servable = self.collector.servable
        what = f"{servable.name!r} version {servable.version}" if servable else "no model yet"
        self.announce(f"edgefleet agent serving on {self.serve_url} ({what})")

    def _backoff(self) -> Backoff:
        return Backoff(self.settings.backoff_base_s, self.settings.backoff_max_s)

    def _connect(self) -> None:
        s = self.settings
        try:
            credential, enrolled_now = ensure_enrolled(s, self.inventory, self.stop_event)
        except StoppedError:
            return
        self.device_id = credential.device_id
        if enrolled_now:
            self.events.emit("enrolled", detail=f"device {credential.device_id}")
            self._announce_serving()
        self._uplink = uplink = Uplink(
            credential.server_url,
            credential=credential.credential,
            ca_file=s.ca_file,
            timeout_s=s.request_timeout_s,
            max_request_bytes=s.max_request_bytes,
        )
        trust = AgentTrust(
            s.trust_dir,
            s.models_dir,
            s.downloads_dir,
            uplink.base_url,
            uplink.client,
            budget=self.budget,
        )
        assert self._spool is not None
        self.loops = loops = ControlLoops(
            device_id=credential.device_id,
            uplink=uplink,
            trust=trust,
            updater=self.updater,
            uploader=Uploader(self._spool, uplink, self.events, self._spool_lock),
            events=self.events,
            inventory=self.inventory,
            stop=self.stop_event,
            poll_wait_s=s.poll_wait_s,
            heartbeat_interval_s=s.heartbeat_interval_s,
            upload_interval_s=s.upload_interval_s,
            backoff=self._backoff,
            shadow=self.shadow,
            held_since=lambda: self.hold.held_since,
            wake=self.activate,
        )
        if s.fl_tasks:
            worker = FLWorker(
                device_id=credential.device_id,
                uplink=uplink,
                folder=s.data_dir / "fl",
                tasks=s.fl_tasks,
                partition=parse_partition(s.fl_partition),
                events=self.events,
                stop=self.stop_event,
                backoff=self._backoff,
            )
            loops.fl = worker
            self._thread("edgefleet-federated", worker.run)
        self._thread("edgefleet-heartbeat", loops.run_heartbeats)
        self._thread("edgefleet-activate", loops.run_activations)
        self._thread("edgefleet-upload", loops.run_uploads)
        loops.run_desired_state()


def _write(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, b"\0")
