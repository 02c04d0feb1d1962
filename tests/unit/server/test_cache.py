from __future__ import annotations

import pytest

from edgefleet.server.cache import FULL_EVERY, OVERLAP_S, CredentialCache, DesiredVersions


def test_a_credential_is_unknown_until_put_then_maps_to_its_device() -> None:
    cache = CredentialCache()
    assert cache.get("hash-1") is None
    cache.put("hash-1", "dev-1", cache.generation)
    assert cache.get("hash-1") == "dev-1"


def test_a_full_credential_cache_forgets_its_oldest_entries_first() -> None:
    cache = CredentialCache(capacity=2)
    for index in range(3):
        cache.put(f"hash-{index}", f"dev-{index}", cache.generation)
    assert (cache.get("hash-0"), cache.get("hash-1"), cache.get("hash-2")) == (
        None,
        "dev-1",
        "dev-2",
    )
    assert len(cache) == 2


def test_a_credential_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CredentialCache(capacity=0)


class Database:
    """The desired states a loader reads: device -> (version, issued_at, expires_at)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, float, float]] = {}
        self.asked: list[float | None] = []

    def load(self, issued_after: float | None) -> dict[str, tuple[int, float, float]]:
        self.asked.append(issued_after)
        return {
            device: row
            for device, row in self.rows.items()
            if issued_after is None or row[1] > issued_after
        }


def test_versions_are_unknown_until_the_first_refresh_reads_them() -> None:
    database = Database()
    database.rows["dev-1"] = (3, 100.0, 900.0)
    versions = DesiredVersions(database.load)
    assert versions.get("dev-1") is None
    assert versions.refresh() == 1
    assert versions.get("dev-1") == (3, 900.0)


def test_a_version_never_moves_back_whatever_order_writes_and_refreshes_come_in() -> None:
    database = Database()
    database.rows["dev-1"] = (1, 100.0, 900.0)  # read before this process's write committed
    versions = DesiredVersions(database.load)
    versions.record("dev-1", 2, 950.0)
    assert versions.refresh() == 0
    assert versions.get("dev-1") == (2, 950.0)
    versions.record("dev-1", 1, 900.0)
    assert versions.get("dev-1") == (2, 950.0)


def test_a_refresh_sees_versions_other_processes_wrote_and_counts_what_moved() -> None:
    database = Database()
    database.rows = {"dev-1": (1, 100.0, 900.0), "dev-2": (1, 100.0, 900.0)}
    versions = DesiredVersions(database.load)
    versions.refresh()
    database.rows["dev-2"] = (2, 200.0, 1000.0)
    database.rows["dev-3"] = (1, 200.0, 1000.0)
    assert versions.refresh() == 2
    assert (versions.get("dev-2"), versions.get("dev-3")) == ((2, 1000.0), (1, 1000.0))


def test_refreshes_read_from_shortly_before_the_newest_issue_time_and_sometimes_all() -> None:
    database = Database()
    database.rows["dev-1"] = (1, 500.0, 900.0)
    versions = DesiredVersions(database.load)
    for _ in range(FULL_EVERY + 1):
        versions.refresh()
    assert database.asked[0] is None
    assert database.asked[1:FULL_EVERY] == [500.0 - OVERLAP_S] * (FULL_EVERY - 1)
    assert database.asked[FULL_EVERY] is None


def test_a_state_issued_late_within_the_overlap_is_still_seen() -> None:
    database = Database()
    database.rows["dev-1"] = (1, 500.0, 900.0)
    versions = DesiredVersions(database.load)
    versions.refresh()
    database.rows["dev-2"] = (1, 500.0 - OVERLAP_S / 2, 900.0)  # committed after that read
    versions.refresh()
    assert versions.get("dev-2") == (1, 900.0)
