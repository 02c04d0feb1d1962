"""A cross-process lock over the store's leased locks, re-entrant within one thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from edgefleet.errors import StoreError
from edgefleet.server.store import Store

__all__ = ["StoreLock"]


class StoreLock:
    """Hold the store lock ``name`` for the duration of a ``with`` block.

    Every server process sharing the database competes for the same lock; the owner is this
    process and thread, so two threads of one process exclude each other too. Entering again in
    the thread that holds it only counts depth, so nested blocks do not release it early.
    """

    def __init__(
        self, store: Store, name: str, instance: str, *, lease_s: float = 60.0, wait_s: float = 60.0
    ) -> None:
        self._store = store
        self._name = name
        self._instance = instance
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._local = threading.local()

    def _owner(self) -> str:
        return f"{self._instance}:{threading.get_ident()}"

    def __enter__(self) -> StoreLock:
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            return self
        deadline = time.monotonic() + self._wait_s
        delay = 0.005
        while not self._store.try_lock(self._name, self._owner(), self._lease_s, time.time()):
            if time.monotonic() > deadline:
                raise StoreError(
                    f"timed out after {self._wait_s:.0f} s waiting for the {self._name!r} lock "
                    "held by another server process"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._local.depth = 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._store.release_lock(self._name, self._owner())
