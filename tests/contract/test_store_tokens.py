from __future__ import annotations

import pytest

from edgefleet.errors import ConflictError
from edgefleet.server.store import Store

from .helpers import NOW


def test_an_operator_token_is_found_by_its_hash(store: Store) -> None:
    token_id = store.create_operator_token("hash-1", "init", NOW)
    row = store.find_operator_token("hash-1")
    assert row is not None
    assert (row.id, row.token_hash, row.name, row.created_at) == (token_id, "hash-1", "init", NOW)


def test_an_unknown_operator_token_is_not_found(store: Store) -> None:
    assert store.find_operator_token("nope") is None


def test_an_operator_token_hash_cannot_be_stored_twice(store: Store) -> None:
    store.create_operator_token("hash-1", "first", NOW)
    with pytest.raises(ConflictError):
        store.create_operator_token("hash-1", "second", NOW)


def test_an_enrolment_token_keeps_its_labels_uses_and_expiry(store: Store) -> None:
    row = store.create_enroll_token(
        "enroll-1", labels={"site": "lab"}, uses=3, expires_at=NOW + 3600, now=NOW
    )
    assert (row.labels, row.uses, row.remaining) == ({"site": "lab"}, 3, 3)
    assert (row.expires_at, row.created_at) == (NOW + 3600, NOW)
    assert store.list_enroll_tokens() == [row]


def test_consuming_an_enrolment_token_uses_it_up_one_use_at_a_time(store: Store) -> None:
    store.create_enroll_token("enroll-1", labels={}, uses=2, expires_at=None, now=NOW)
    first = store.consume_enroll_token("enroll-1", NOW)
    second = store.consume_enroll_token("enroll-1", NOW)
    assert first is not None
    assert first.remaining == 1
    assert second is not None
    assert second.remaining == 0
    assert store.consume_enroll_token("enroll-1", NOW) is None
    assert [t.remaining for t in store.list_enroll_tokens()] == [0]


def test_an_expired_enrolment_token_cannot_be_consumed(store: Store) -> None:
    store.create_enroll_token("enroll-1", labels={}, uses=5, expires_at=NOW + 10, now=NOW)
    assert store.consume_enroll_token("enroll-1", NOW + 9.5) is not None
    assert store.consume_enroll_token("enroll-1", NOW + 10) is None
    assert store.consume_enroll_token("enroll-1", NOW + 11) is None
    assert store.list_enroll_tokens()[0].remaining == 4


def test_a_token_without_a_use_limit_can_be_consumed_again_and_again(store: Store) -> None:
    store.create_enroll_token("enroll-1", labels={"a": "b"}, uses=None, expires_at=None, now=NOW)
    for _ in range(3):
        row = store.consume_enroll_token("enroll-1", NOW)
        assert row is not None
        assert (row.uses, row.remaining, row.labels) == (None, None, {"a": "b"})


def test_an_unknown_enrolment_token_cannot_be_consumed(store: Store) -> None:
    assert store.consume_enroll_token("nope", NOW) is None


def test_an_enrolment_token_hash_cannot_be_stored_twice(store: Store) -> None:
    store.create_enroll_token("enroll-1", labels={}, uses=1, expires_at=None, now=NOW)
    with pytest.raises(ConflictError):
        store.create_enroll_token("enroll-1", labels={}, uses=1, expires_at=None, now=NOW)


def test_an_enrolment_token_needs_at_least_one_use(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1 use"):
        store.create_enroll_token("enroll-1", labels={}, uses=0, expires_at=None, now=NOW)
    assert store.list_enroll_tokens() == []
