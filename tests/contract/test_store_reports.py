from __future__ import annotations

from typing import Any

import pytest

from edgefleet.errors import NotFoundError
from edgefleet.server.store import EventRow, Store, TelemetryBatchRow

from .helpers import NOW, enrol, event, window


def test_events_are_stored_with_every_field(store: Store) -> None:
    enrol(store, "dev-1")
    sent = event(
        "evt-00001",
        NOW,
        "verification_failed",
        model="digits",
        version="2",
        release=4,
        ok=False,
        detail="hash mismatch",
    )
    assert store.add_events("dev-1", [sent]) == (1, 0)
    [row] = store.list_events("dev-1")
    assert row == EventRow(
        id=row.id,
        device_id="dev-1",
        event_id="evt-00001",
        at=NOW,
        kind="verification_failed",
        model="digits",
        version="2",
        release=4,
        ok=False,
        detail="hash mismatch",
    )


def test_optional_event_fields_default_to_empty(store: Store) -> None:
    enrol(store, "dev-1")
    store.add_events("dev-1", [event("evt-00001")])
    [row] = store.list_events()
    assert (row.model, row.version, row.release, row.ok, row.detail) == ("", "", 0, True, "")


def test_a_retried_event_batch_is_never_stored_twice(store: Store) -> None:
    enrol(store, "dev-1")
    batch = [event(f"evt-{i:05d}", NOW + i) for i in range(3)]
    assert store.add_events("dev-1", batch) == (3, 0)
    assert store.add_events("dev-1", batch) == (0, 3)
    assert store.add_events("dev-1", [*batch[1:], event("evt-00009", NOW + 9)]) == (1, 2)
    assert len(store.list_events("dev-1")) == 4


def test_an_event_repeated_within_one_batch_is_a_duplicate(store: Store) -> None:
    enrol(store, "dev-1")
    assert store.add_events("dev-1", [event("evt-00001"), event("evt-00001")]) == (1, 1)


def test_devices_may_reuse_each_others_event_ids(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    assert store.add_events("dev-1", [event("evt-00001")]) == (1, 0)
    assert store.add_events("dev-2", [event("evt-00001")]) == (1, 0)


def test_events_from_an_unknown_device_are_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        store.add_events("ghost", [event("evt-00001")])
    with pytest.raises(NotFoundError):
        store.add_events("ghost", [])


def test_an_event_without_an_id_is_refused(store: Store) -> None:
    enrol(store, "dev-1")
    with pytest.raises(ValueError, match="event 0 has no event_id"):
        store.add_events("dev-1", [{"at": NOW, "kind": "verified"}])


def test_events_are_listed_newest_first_up_to_the_limit(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    store.add_events("dev-1", [event("evt-00001", NOW + 1), event("evt-00003", NOW + 3)])
    store.add_events("dev-2", [event("evt-00002", NOW + 2)])
    assert [e.event_id for e in store.list_events()] == ["evt-00003", "evt-00002", "evt-00001"]
    assert [e.event_id for e in store.list_events(limit=2)] == ["evt-00003", "evt-00002"]
    assert [e.event_id for e in store.list_events("dev-1")] == ["evt-00003", "evt-00001"]
    assert store.list_events("ghost") == []


def test_telemetry_windows_are_stored_with_their_snapshot(store: Store) -> None:
    enrol(store, "dev-1")
    sent = window("win-00001", NOW)
    assert store.add_telemetry("dev-1", [sent], 0, NOW + 61) == (1, 0)
    [row] = store.list_telemetry()
    assert (row.device_id, row.window_id, row.model, row.version) == (
        "dev-1",
        "win-00001",
        "digits",
        "1",
    )
    assert (row.started_at, row.ended_at, row.received_at) == (NOW, NOW + 60, NOW + 61)
    assert (row.snapshot, row.swaps, row.rollbacks) == (sent["snapshot"], 0, 0)


def test_a_retried_telemetry_batch_is_never_counted_twice(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    batch = [window("win-00001", NOW), window("win-00002", NOW + 60)]
    assert store.add_telemetry("dev-1", batch, 0, NOW) == (2, 0)
    assert store.add_telemetry("dev-1", batch, 0, NOW) == (0, 2)
    assert store.add_telemetry("dev-2", batch[:1], 0, NOW) == (1, 0)
    assert len(store.list_telemetry()) == 3


def test_the_drop_counter_keeps_the_highest_value_reported(store: Store) -> None:
    enrol(store, "dev-1")
    store.add_telemetry("dev-1", [], 5, NOW)
    store.add_telemetry("dev-1", [window("win-00001")], 3, NOW)
    device = store.get_device("dev-1")
    assert device is not None
    assert device.telemetry_dropped == 5
    store.add_telemetry("dev-1", [], 8, NOW)
    device = store.get_device("dev-1")
    assert device is not None
    assert device.telemetry_dropped == 8


def test_batches_of_several_devices_stored_together_each_get_their_own_counts(
    store: Store,
) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    store.add_telemetry("dev-1", [window("win-old")], 0, NOW)
    batches = [
        TelemetryBatchRow("dev-1", [window("win-old"), window("win-new")], 4, NOW),
        TelemetryBatchRow("ghost", [window("win-1")], 0, NOW),
        TelemetryBatchRow("dev-2", [window("win-new")], 0, NOW),
        TelemetryBatchRow("dev-1", [window("win-new")], 2, NOW),  # a retry racing the first
    ]
    assert store.add_telemetry_batches(batches) == [(1, 1), None, (1, 0), (0, 1)]
    stored = sorted((row.device_id, row.window_id) for row in store.list_telemetry())
    assert stored == [("dev-1", "win-new"), ("dev-1", "win-old"), ("dev-2", "win-new")]
    device = store.get_device("dev-1")
    assert device is not None
    assert device.telemetry_dropped == 4


def test_a_malformed_window_in_a_group_of_batches_stores_nothing(store: Store) -> None:
    enrol(store, "dev-1")
    broken = {k: v for k, v in window("win-2").items() if k != "snapshot"}
    batches = [
        TelemetryBatchRow("dev-1", [window("win-1")], 0, NOW),
        TelemetryBatchRow("dev-1", [broken], 0, NOW),
    ]
    with pytest.raises(ValueError, match="snapshot"):
        store.add_telemetry_batches(batches)
    assert store.list_telemetry() == []


def test_telemetry_from_an_unknown_device_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        store.add_telemetry("ghost", [window("win-00001")], 0, NOW)


def test_telemetry_is_filtered_by_device_model_version_and_start(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    store.add_telemetry("dev-1", [window("w-1", NOW), window("w-2", NOW + 60, version="2")], 0, NOW)
    store.add_telemetry("dev-2", [window("w-3", NOW + 30, model="audio")], 0, NOW)

    def ids(**filters: Any) -> list[str]:
        return [row.window_id for row in store.list_telemetry(**filters)]

    assert ids() == ["w-1", "w-3", "w-2"]
    assert ids(device_id="dev-1") == ["w-1", "w-2"]
    assert ids(model="digits") == ["w-1", "w-2"]
    assert ids(model="digits", version="2") == ["w-2"]
    assert ids(since=NOW + 30) == ["w-3", "w-2"]
    assert ids(device_id="dev-2", model="digits") == []


def test_telemetry_is_filtered_by_when_the_server_received_it(store: Store) -> None:
    enrol(store, "dev-1")
    store.add_telemetry("dev-1", [window("w-1", NOW)], 0, NOW + 100)
    store.add_telemetry("dev-1", [window("w-2", NOW - 50)], 0, NOW + 200)  # late upload

    def ids(**filters: Any) -> list[str]:
        return [row.window_id for row in store.list_telemetry(**filters)]

    assert ids(received_since=NOW + 150) == ["w-2"]
    assert ids(received_since=NOW + 100) == ["w-2", "w-1"]
    assert ids(received_since=NOW + 150, since=NOW) == []
