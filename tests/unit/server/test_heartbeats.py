from __future__ import annotations

import pytest

from edgefleet.errors import StoreError
from edgefleet.server.heartbeats import HeartbeatBuffer
from edgefleet.server.store import HeartbeatRow, Store

from .conftest import NOW, enrol


def test_buffered_heartbeats_reach_the_database_only_when_flushed(store: Store) -> None:
    enrol(store, "dev-1")
    buffer = HeartbeatBuffer(store)
    buffer.add(HeartbeatRow("dev-1", {"arch": "arm64"}, "serving", NOW + 5))
    device = store.get_device("dev-1")
    assert device is not None
    assert device.state == "enrolled"
    assert buffer.flush() == 1
    device = store.get_device("dev-1")
    assert device is not None
    assert (device.inventory, device.state, device.last_seen_at) == (
        {"arch": "arm64"},
        "serving",
        NOW + 5,
    )
    assert len(buffer) == 0
    assert buffer.flush() == 0


def test_only_the_newest_heartbeat_of_a_device_is_stored(store: Store) -> None:
    enrol(store, "dev-1")
    buffer = HeartbeatBuffer(store)
    buffer.add(HeartbeatRow("dev-1", {}, "downloading", NOW + 1))
    buffer.add(HeartbeatRow("dev-1", {}, "serving", NOW + 2))
    assert buffer.flush() == 1
    device = store.get_device("dev-1")
    assert device is not None
    assert (device.state, device.last_seen_at) == ("serving", NOW + 2)


def test_heartbeats_of_an_unknown_device_are_dropped_and_the_others_stored(store: Store) -> None:
    enrol(store, "dev-1")
    buffer = HeartbeatBuffer(store)
    buffer.add(HeartbeatRow("ghost", {}, "idle", NOW))
    buffer.add(HeartbeatRow("dev-1", {}, "idle", NOW + 1))
    assert buffer.flush() == 1
    assert len(buffer) == 0


def test_heartbeats_survive_a_failed_flush_and_newer_ones_win_on_the_next(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    buffer = HeartbeatBuffer(store)
    buffer.add(HeartbeatRow("dev-1", {}, "serving", NOW + 1))
    buffer.add(HeartbeatRow("dev-2", {}, "serving", NOW + 1))
    with store._engine.begin() as connection:  # the table disappears: the database fails
        connection.exec_driver_sql("ALTER TABLE devices RENAME TO devices_away")
    with pytest.raises(StoreError, match="devices"):
        buffer.flush()
    assert len(buffer) == 2
    buffer.add(HeartbeatRow("dev-1", {}, "rolling back", NOW + 2))
    with store._engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE devices_away RENAME TO devices")
    assert buffer.flush() == 2
    states = {d.device_id: (d.state, d.last_seen_at) for d in store.list_devices()}
    assert states == {"dev-1": ("rolling back", NOW + 2), "dev-2": ("serving", NOW + 1)}
