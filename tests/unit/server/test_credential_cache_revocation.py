"""The credential cache forgets a revoked credential, and re-checks old entries."""

from __future__ import annotations

from edgefleet.server.cache import CredentialCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_discarded_credential_is_no_longer_known() -> None:
    cache = CredentialCache()
    cache.put("hash-1", "dev-1")
    cache.discard("hash-1")
    cache.discard("never-seen")
    assert cache.get("hash-1") is None


def test_an_entry_older_than_its_max_age_is_checked_again() -> None:
    clock = Clock()
    cache = CredentialCache(max_age_s=30.0, clock=clock)
    cache.put("hash-1", "dev-1")
    clock.now = 30.0
    assert cache.get("hash-1") == "dev-1"
    clock.now = 30.5
    assert cache.get("hash-1") is None  # another process may have revoked it: ask the database
    cache.put("hash-1", "dev-1")
    assert cache.get("hash-1") == "dev-1"
