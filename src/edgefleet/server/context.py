"""Everything a request handler needs, built once per server process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

from edgefleet.protocol.signing import SigningKey
from edgefleet.server.cache import CredentialCache, DesiredVersions
from edgefleet.server.heartbeats import HeartbeatBuffer
from edgefleet.server.locks import StoreLock
from edgefleet.server.registry.artifacts import ArtifactStore
from edgefleet.server.registry.tuf_repo import TufRepository
from edgefleet.server.rollout.windows import WindowCache
from edgefleet.server.settings import ServerSettings
from edgefleet.server.store import Store
from edgefleet.server.telemetry_writer import TelemetryWriter

__all__ = ["ChangeNotifier", "ServerContext"]


class ChangeNotifier:
    """Wakes this process's desired-state long polls when desired states may have changed.

    Fired by this process's deployments at once, and by the refresh loop when it reads
    versions that other server processes sharing the database wrote (within
    ``desired_state_refresh_s``).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (at start-up)."""
        self._loop = loop

    def changed(self) -> None:
        """Wake every waiting poll (they re-check their own device); safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Wait until the next change or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass
class ServerContext:
    """The process's settings, store, registry, keys and in-memory caches."""

    settings: ServerSettings
    store: Store
    repository: TufRepository
    artifacts: ArtifactStore
    director: SigningKey
    changes: ChangeNotifier = field(default_factory=ChangeNotifier)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    credentials: CredentialCache = field(default_factory=CredentialCache)
    rollout_windows: WindowCache = field(default_factory=WindowCache)
    registry_lock: StoreLock = field(init=False)
    versions: DesiredVersions = field(init=False)
    heartbeats: HeartbeatBuffer = field(init=False)
    telemetry: TelemetryWriter = field(init=False)

    def __post_init__(self) -> None:
        self.versions = DesiredVersions(self.store.desired_state_versions)
        self.heartbeats = HeartbeatBuffer(self.store)
        self.telemetry = TelemetryWriter(self.store)
        # Release numbers, TUF metadata and the deployment list change under this lock only.
        self.registry_lock = StoreLock(self.store, "registry", self.instance)
