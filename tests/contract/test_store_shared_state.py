from __future__ import annotations

import pytest

from edgefleet.server.store import Store

from .helpers import NOW


def test_metadata_bytes_are_stored_replaced_and_listed_by_name(store: Store) -> None:
    assert store.get_metadata("root.json") is None
    store.put_metadata("root.json", b'{"v": 1}')
    store.put_metadata("1.root.json", b'{"v": 1}')
    store.put_metadata("root.json", b'{"v": 2}\x00\xff')
    assert store.get_metadata("root.json") == b'{"v": 2}\x00\xff'
    assert isinstance(store.get_metadata("root.json"), bytes)
    assert store.list_metadata() == ["1.root.json", "root.json"]


def test_settings_are_stored_and_replaced(store: Store) -> None:
    assert store.get_setting("deployments") is None
    store.set_setting("deployments", "[]")
    store.set_setting("deployments", '[{"model": "digits"}]')
    assert store.get_setting("deployments") == '[{"model": "digits"}]'


def test_a_free_lock_is_taken_and_others_wait_until_its_lease_expires(store: Store) -> None:
    assert store.try_lock("resign", "replica-a", 30, NOW)
    assert not store.try_lock("resign", "replica-b", 30, NOW + 29.9)
    assert store.try_lock("resign", "replica-b", 30, NOW + 30)
    assert not store.try_lock("resign", "replica-a", 30, NOW + 31)


def test_the_holder_renews_its_lease(store: Store) -> None:
    assert store.try_lock("resign", "replica-a", 30, NOW)
    assert store.try_lock("resign", "replica-a", 30, NOW + 20)
    assert not store.try_lock("resign", "replica-b", 30, NOW + 45)
    assert store.try_lock("resign", "replica-b", 30, NOW + 50)


def test_a_released_lock_can_be_taken_at_once(store: Store) -> None:
    store.try_lock("resign", "replica-a", 30, NOW)
    assert not store.release_lock("resign", "replica-b")
    assert not store.try_lock("resign", "replica-b", 30, NOW + 1)
    assert store.release_lock("resign", "replica-a")
    assert store.try_lock("resign", "replica-b", 30, NOW + 1)


def test_locks_of_different_names_are_independent(store: Store) -> None:
    assert store.try_lock("resign", "replica-a", 30, NOW)
    assert store.try_lock("rollouts", "replica-b", 30, NOW)


def test_a_lease_must_last_some_time(store: Store) -> None:
    with pytest.raises(ValueError, match="longer than 0"):
        store.try_lock("resign", "replica-a", 0, NOW)
