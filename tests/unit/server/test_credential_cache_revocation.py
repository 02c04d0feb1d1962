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
    cache.put("hash-1", "dev-1", cache.generation)
    cache.discard("hash-1")
    cache.discard("never-seen")
    assert cache.get("hash-1") is None


def test_an_entry_older_than_its_max_age_is_checked_again() -> None:
    clock = Clock()
    cache = CredentialCache(max_age_s=30.0, clock=clock)
    cache.put("hash-1", "dev-1", cache.generation)
    clock.now = 30.0
    assert cache.get("hash-1") == "dev-1"
    clock.now = 30.5
    assert cache.get("hash-1") is None  # another process may have revoked it: ask the database
    cache.put("hash-1", "dev-1", cache.generation)
    assert cache.get("hash-1") == "dev-1"


def test_a_lookup_that_read_the_credential_before_its_revocation_does_not_cache_it() -> None:
    # one process: a device request misses the cache and reads the database; the device is
    # decommissioned (committed, then discarded) before that request puts what it read
    cache = CredentialCache()
    seen = cache.generation  # the request, before its database lookup
    cache.discard("hash-1")  # the decommission, after it committed
    cache.put("hash-1", "dev-1", seen)  # the request, with the credential it read earlier
    assert cache.get("hash-1") is None


def test_a_revocation_of_another_credential_during_a_lookup_only_skips_caching_it_once() -> None:
    cache = CredentialCache()
    seen = cache.generation
    cache.discard("hash-2")
    cache.put("hash-1", "dev-1", seen)  # not cached: the database is asked again next time
    assert cache.get("hash-1") is None
    cache.put("hash-1", "dev-1", cache.generation)  # a lookup begun after the revocation
    assert cache.get("hash-1") == "dev-1"
