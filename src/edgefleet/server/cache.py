"""In-memory caches that let one server process answer most device requests without the database.

A device polls its desired state every few seconds and almost always gets "unchanged" (304).
Reading the credential and the version from the database on each of those polls is what limits
how many devices one process serves, so both live in memory:

- :class:`CredentialCache` maps credential hashes to device ids. A credential is revoked when
  its device is decommissioned: this process forgets it at once (:meth:`CredentialCache.discard`)
  and every process re-checks an entry older than ``max_age_s`` against the database, so other
  server processes refuse it within that time. A lookup that read the database before a
  revocation in this process committed cannot put the revoked credential back: each
  revocation bumps :attr:`CredentialCache.generation`, and :meth:`CredentialCache.put` caches
  nothing when the generation moved since its caller's lookup began.
- :class:`DesiredVersions` holds every device's newest desired-state version and expiry. This
  process's own writes go in at once (:meth:`DesiredVersions.record`); writes by other server
  processes sharing the database arrive with the next :meth:`DesiredVersions.refresh`, which
  the server runs every ``desired_state_refresh_s`` seconds. A refresh reads only the states
  issued since shortly before the newest one it has seen (``OVERLAP_S``, for transactions
  that commit late or clocks that differ between hosts), and every ``FULL_EVERY``-th refresh
  reads them all. Versions only grow, so a refresh that read the database before a local write
  committed never moves an entry back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["FULL_EVERY", "OVERLAP_S", "CredentialCache", "DesiredVersions"]

OVERLAP_S = 60.0
"""How far before the newest issue time seen an incremental refresh starts reading."""

FULL_EVERY = 60
"""Every this many refreshes, all desired states are read again."""

Loader = Callable[[float | None], Mapping[str, tuple[int, float, float]]]


class CredentialCache:
    """Credential hash -> device id, at most ``capacity`` entries (the oldest go first).

    An entry confirmed more than ``max_age_s`` seconds ago is not returned (the caller reads
    the database again), so a credential revoked by another server process stops working here
    within that time.

    A caller takes :attr:`generation` before it reads the database and hands it to
    :meth:`put`; a :meth:`discard` in between makes that ``put`` cache nothing, since what
    was read may be the credential just revoked.

    Examples
    --------
    >>> cache = CredentialCache()
    >>> seen = cache.generation  # a device request starts its database lookup
    >>> cache.discard("h1")  # the device is decommissioned meanwhile
    >>> cache.put("h1", "dev-1", seen)  # the lookup's answer, read before the revocation
    >>> cache.get("h1") is None
    True
    """

    def __init__(
        self,
        capacity: int = 200_000,
        max_age_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._max_age_s = max_age_s
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many revocations this cache has seen; take it before a database lookup."""
        return self._generation

    def get(self, credential_hash: str) -> str | None:
        """The device id of a credential confirmed within ``max_age_s``, or None."""
        entry = self._entries.get(credential_hash)
        if entry is None or self._clock() - entry[1] > self._max_age_s:
            return None
        return entry[0]

    def put(self, credential_hash: str, device_id: str, generation: int) -> None:
        """Remember a credential the database confirmed in a lookup begun at ``generation``.

        Nothing is cached when a credential was revoked (:meth:`discard`) since then.
        """
        with self._lock:
            if generation != self._generation:
                return
            self._entries.pop(credential_hash, None)  # re-confirmed entries move to the end
            self._entries[credential_hash] = (device_id, self._clock())
            while len(self._entries) > self._capacity:
                del self._entries[next(iter(self._entries))]

    def discard(self, credential_hash: str) -> None:
        """Forget a credential (its device was decommissioned); lookups under way cache nothing."""
        with self._lock:
            self._generation += 1
            self._entries.pop(credential_hash, None)

    def __len__(self) -> int:
        return len(self._entries)


class DesiredVersions:
    """Each device's newest desired-state ``(version, expires_at)``, kept current in memory.

    ``load(issued_after)`` reads ``device id -> (version, issued_at, expires_at)`` from the
    database, every device's when ``issued_after`` is None (the store's
    ``desired_state_versions``). Until the first :meth:`refresh`, and for devices the refreshes
    did not see yet, :meth:`get` returns None and the caller reads the database.
    """

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._entries: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._newest_issued: float | None = None
        self._refreshes = 0

    def get(self, device_id: str) -> tuple[int, float] | None:
        """The newest ``(version, expires_at)`` known for ``device_id``, or None."""
        return self._entries.get(device_id)

    def record(self, device_id: str, version: int, expires_at: float) -> None:
        """Note a desired state this process wrote or read (never moves a version back)."""
        with self._lock:
            self._merge(device_id, version, expires_at)

    def refresh(self) -> int:
        """Read new entries from the database and merge them in; return how many moved."""
        full = self._newest_issued is None or self._refreshes % FULL_EVERY == 0
        self._refreshes += 1
        since = None if full or self._newest_issued is None else self._newest_issued - OVERLAP_S
        loaded = self._load(since)
        moved = 0
        with self._lock:
            for device_id, (version, issued_at, expires_at) in loaded.items():
                moved += self._merge(device_id, version, expires_at)
                if self._newest_issued is None or issued_at > self._newest_issued:
                    self._newest_issued = issued_at
        return moved

    def _merge(self, device_id: str, version: int, expires_at: float) -> bool:
        known = self._entries.get(device_id)
        if known is None or version > known[0]:
            self._entries[device_id] = (version, expires_at)
            return True
        return False

    def __len__(self) -> int:
        return len(self._entries)
