from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from edgefleet.server.store import Store, open_store

from . import processes
from .helpers import NOW, enrol, push


def test_two_processes_racing_for_a_one_use_token_exactly_one_wins(
    store: Store, store_url: str
) -> None:
    store.create_enroll_token("enroll-1", labels={}, uses=1, expires_at=None, now=NOW)
    wins = processes.race(store_url, processes.consume_token, [("enroll-1", NOW)] * 2)
    assert sorted(wins) == [False, True]
    assert store.list_enroll_tokens()[0].remaining == 0


def test_threads_consuming_a_three_use_token_get_exactly_three_uses(store: Store) -> None:
    store.create_enroll_token("enroll-1", labels={}, uses=3, expires_at=None, now=NOW)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.consume_enroll_token("enroll-1", NOW), range(8)))
    won = [row for row in results if row is not None]
    assert sorted(row.remaining for row in won if row.remaining is not None) == [0, 1, 2]


def test_threads_adding_releases_get_distinct_consecutive_numbers(store: Store) -> None:
    push(store)

    def add_five(_: int) -> list[int]:
        return [
            store.add_release("digits", "1", "t", "a" * 64, 1, {}, NOW).release for _ in range(5)
        ]

    with ThreadPoolExecutor(6) as pool:
        numbers = [n for batch in pool.map(add_five, range(6)) for n in batch]
    assert sorted(numbers) == list(range(1, 31))
    assert [r.release for r in store.list_releases("digits")] == list(range(1, 31))


def test_processes_adding_releases_get_distinct_consecutive_numbers(
    store: Store, store_url: str
) -> None:
    push(store)
    batches = processes.race(store_url, processes.add_releases, [("digits", "1", 10)] * 3)
    numbers = [n for batch in batches for n in batch]
    assert sorted(numbers) == list(range(1, 31))
    assert all(batch == sorted(batch) for batch in batches)  # each process sees them grow


def test_threads_issuing_desired_states_get_distinct_versions(store: Store) -> None:
    enrol(store, "dev-1")
    with ThreadPoolExecutor(6) as pool:
        versions = list(
            pool.map(lambda _: store.set_desired_state("dev-1", None, NOW, NOW + 1), range(12))
        )
    assert sorted(versions) == list(range(1, 13))
    state = store.get_desired_state("dev-1")
    assert state is not None
    assert state.version == 12


def test_two_processes_competing_for_a_lock_one_holds_it_until_its_lease_expires(
    store: Store, store_url: str
) -> None:
    owners = ["replica-a", "replica-b"]
    held = processes.race(
        store_url, processes.take_lock, [("resign", owner, 30.0, NOW) for owner in owners]
    )
    assert sorted(held) == [False, True]
    holder, other = owners if held[0] else owners[::-1]
    assert not store.try_lock("resign", other, 30, NOW + 29)
    assert store.try_lock("resign", holder, 30, NOW + 29)  # renewed until NOW + 59
    assert not store.try_lock("resign", other, 30, NOW + 58)
    assert store.try_lock("resign", other, 30, NOW + 59)


def test_two_processes_migrating_one_new_database_at_once_both_succeed(empty_url: str) -> None:
    revisions = processes.race(empty_url, processes.migrate, [(), ()])
    assert revisions == [Store.head_revision()] * 2
    with open_store(empty_url) as store:
        store.set_setting("migrated", "yes")
        assert store.get_setting("migrated") == "yes"
