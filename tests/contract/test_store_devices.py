from __future__ import annotations

import pytest

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import DeviceRow, HeartbeatRow, Store, desired_states

from .helpers import NOW, enrol


def test_an_enrolled_device_is_found_by_id_and_by_credential_hash(store: Store) -> None:
    created = store.create_device("dev-1", "cred-1", {"site": "lab"}, {"arch": "arm64"}, NOW)
    assert created == DeviceRow(
        device_id="dev-1",
        credential_hash="cred-1",
        labels={"site": "lab"},
        inventory={"arch": "arm64"},
        state="enrolled",
        enrolled_at=NOW,
        last_seen_at=NOW,
        telemetry_dropped=0,
        desired_version=0,
    )
    assert store.get_device("dev-1") == created
    assert store.find_device_by_credential("cred-1") == created


def test_unknown_devices_and_credentials_are_not_found(store: Store) -> None:
    enrol(store)
    assert store.get_device("dev-2") is None
    assert store.find_device_by_credential("cred-dev-2") is None


def test_a_device_id_cannot_be_enrolled_twice(store: Store) -> None:
    enrol(store, "dev-1")
    with pytest.raises(ConflictError, match="dev-1"):
        store.create_device("dev-1", "another-credential", {}, {}, NOW)


def test_two_devices_cannot_share_a_credential(store: Store) -> None:
    store.create_device("dev-1", "same", {}, {}, NOW)
    with pytest.raises(ConflictError):
        store.create_device("dev-2", "same", {}, {}, NOW)
    assert store.get_device("dev-2") is None


def test_devices_are_listed_by_id_and_filtered_by_every_label_of_the_selector(
    store: Store,
) -> None:
    enrol(store, "c", {"site": "a", "tier": "edge"})
    enrol(store, "a", {"site": "a"})
    enrol(store, "b", {"site": "b", "tier": "edge"})
    assert [d.device_id for d in store.list_devices()] == ["a", "b", "c"]
    assert [d.device_id for d in store.list_devices({})] == ["a", "b", "c"]
    assert [d.device_id for d in store.list_devices({"site": "a"})] == ["a", "c"]
    assert [d.device_id for d in store.list_devices({"site": "a", "tier": "edge"})] == ["c"]
    assert store.list_devices({"site": "z"}) == []


def test_a_heartbeat_updates_inventory_state_and_last_seen_but_not_labels(store: Store) -> None:
    enrol(store, "dev-1", {"site": "lab"})
    beat = HeartbeatRow("dev-1", {"arch": "arm64", "cpu_count": 4}, "serving", NOW + 5)
    assert store.record_heartbeats([beat]) == []
    row = store.get_device("dev-1")
    assert row is not None
    assert (row.inventory, row.state, row.last_seen_at) == (
        {"arch": "arm64", "cpu_count": 4},
        "serving",
        NOW + 5,
    )
    assert (row.labels, row.enrolled_at) == ({"site": "lab"}, NOW)


def test_heartbeats_of_many_devices_are_stored_together_each_with_its_own_values(
    store: Store,
) -> None:
    for index in range(3):
        enrol(store, f"dev-{index}")
    beats = [HeartbeatRow(f"dev-{i}", {"n": i}, f"state-{i}", NOW + i) for i in range(3)]
    assert store.record_heartbeats(beats) == []
    for index in range(3):
        row = store.get_device(f"dev-{index}")
        assert row is not None
        assert (row.inventory, row.state, row.last_seen_at) == (
            {"n": index},
            f"state-{index}",
            NOW + index,
        )


def test_a_heartbeat_from_an_unknown_device_is_skipped_and_named_the_others_are_stored(
    store: Store,
) -> None:
    enrol(store, "dev-1")
    beats = [HeartbeatRow("ghost", {}, "idle", NOW), HeartbeatRow("dev-1", {}, "busy", NOW + 1)]
    assert store.record_heartbeats(beats) == ["ghost"]
    row = store.get_device("dev-1")
    assert row is not None
    assert (row.state, row.last_seen_at) == ("busy", NOW + 1)
    assert store.get_device("ghost") is None


def test_each_desired_state_of_a_device_gets_the_next_version(store: Store) -> None:
    enrol(store, "dev-1")
    model = {"name": "digits", "version": "1", "release": 1}
    assert store.get_desired_state("dev-1") is None
    assert store.set_desired_state("dev-1", model, NOW, NOW + 100) == 1
    assert store.set_desired_state("dev-1", None, NOW + 1, NOW + 101) == 2
    state = store.get_desired_state("dev-1")
    assert state is not None
    assert (state.device_id, state.version, state.model) == ("dev-1", 2, None)
    assert (state.issued_at, state.expires_at) == (NOW + 1, NOW + 101)
    device = store.get_device("dev-1")
    assert device is not None
    assert device.desired_version == 2


def test_a_desired_state_keeps_its_model_payload(store: Store) -> None:
    enrol(store, "dev-1")
    model = {"name": "digits", "version": "1", "release": 3, "sha256": "ab", "length": 9}
    store.set_desired_state("dev-1", model, NOW, NOW + 100)
    state = store.get_desired_state("dev-1")
    assert state is not None
    assert state.model == model


def test_a_desired_state_for_an_unknown_device_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        store.set_desired_state("ghost", None, NOW, NOW + 100)
    assert store.get_desired_state("ghost") is None


def test_a_deployment_to_many_devices_bumps_each_devices_own_version(store: Store) -> None:
    for device_id in ("a", "b", "c"):
        enrol(store, device_id)
    store.set_desired_state("b", None, NOW, NOW + 100)
    model = {"name": "digits", "version": "2", "release": 2}
    versions = store.set_desired_states(["a", "b", "c", "a"], model, NOW + 1, NOW + 101)
    assert versions == {"a": 1, "b": 2, "c": 1}
    for device_id, version in versions.items():
        state = store.get_desired_state(device_id)
        assert state is not None
        assert (state.version, state.model) == (version, model)


def test_a_deployment_naming_an_unknown_device_changes_nothing(store: Store) -> None:
    enrol(store, "a")
    with pytest.raises(NotFoundError, match="ghost"):
        store.set_desired_states(["a", "ghost"], None, NOW, NOW + 100)
    assert store.get_desired_state("a") is None
    device = store.get_device("a")
    assert device is not None
    assert device.desired_version == 0


def test_desired_state_versions_list_every_device_or_those_issued_after_a_time(
    store: Store,
) -> None:
    for device_id in ("a", "b", "c"):
        enrol(store, device_id)
    store.set_desired_state("a", None, NOW, NOW + 100)
    store.set_desired_state("b", None, NOW + 10, NOW + 110)
    store.set_desired_state("b", None, NOW + 20, NOW + 120)
    assert store.desired_state_versions() == {
        "a": (1, NOW, NOW + 100),
        "b": (2, NOW + 20, NOW + 120),
    }
    assert store.desired_state_versions(issued_after=NOW) == {"b": (2, NOW + 20, NOW + 120)}
    assert store.desired_state_versions(issued_after=NOW + 20) == {}


def test_a_deployment_to_no_devices_does_nothing(store: Store) -> None:
    assert store.set_desired_states([], None, NOW, NOW + 100) == {}


def test_a_deployment_larger_than_one_statement_reaches_every_device(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desired_states, "CHUNK", 2)  # devices per statement
    ids = [f"dev-{i}" for i in range(5)]
    for device_id in ids:
        enrol(store, device_id)
    assert store.set_desired_states(ids, None, NOW, NOW + 100) == dict.fromkeys(ids, 1)
    with pytest.raises(NotFoundError, match="ghost"):
        store.set_desired_states([*ids, "ghost"], None, NOW, NOW + 100)
    assert {d.desired_version for d in store.list_devices()} == {1}
