"""Heartbeats are written behind: buffered in memory and stored in one transaction per flush.

A heartbeat is soft state (when a device was last seen, what it reported), sent every few
seconds by every device. Storing each in its own transaction was the largest cost of a
heartbeat, so the server keeps the newest heartbeat of each device in memory and the server's
flush loop stores them together every ``heartbeat_flush_s`` seconds, and once more at
shutdown. A crash loses at most that interval of heartbeats, which the devices' next ones
replace. Operator reads of devices flush first, so they see every heartbeat this process
received.
"""

from __future__ import annotations

import logging
import threading

from edgefleet.server.store import Store
from edgefleet.server.store.rows import HeartbeatRow

__all__ = ["HeartbeatBuffer"]

log = logging.getLogger("edgefleet.server")


class HeartbeatBuffer:
    """The newest unstored heartbeat of each device."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[str, HeartbeatRow] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def add(self, beat: HeartbeatRow) -> None:
        """Buffer ``beat``; it replaces an older unstored heartbeat of the same device."""
        with self._lock:
            self._pending[beat.device_id] = beat

    def flush(self) -> int:
        """Store every buffered heartbeat in one transaction; return how many were stored.

        When the store fails, the heartbeats go back into the buffer (behind any newer ones
        that arrived meanwhile) and the error is raised; nothing is lost.
        """
        with self._flushing:  # one flush at a time, so an older batch never lands last
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                missing = self._store.record_heartbeats(list(batch.values()))
            except BaseException:
                with self._lock:
                    self._pending = {**batch, **self._pending}
                raise
        if missing:
            log.warning("heartbeats of unknown devices dropped: %s", ", ".join(missing))
        return len(batch) - len(missing)

    def __len__(self) -> int:
        return len(self._pending)
