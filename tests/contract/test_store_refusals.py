"""Content a database refuses is the request's fault (a client error), never a failed store.

A number beyond a column's range, NUL in PostgreSQL text or a broken unique key would be
refused again on every retry: the store raises :class:`RefusedValueError` (a
:class:`ProtocolError`) or :class:`RefusedRowError` (a :class:`ConflictError`), which the API
answers with a 4xx. Only a database that fails or cannot be reached is a
:class:`StoreError` (503, try again later).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from edgefleet.errors import ConflictError, ProtocolError, StoreError
from edgefleet.server.store import Store
from edgefleet.server.store._engine import RefusedRowError, RefusedValueError, classify_error
from tests.contract.helpers import NOW, enrol


def _event(**overrides: object) -> dict[str, object]:
    return {"event_id": "e0000001", "at": NOW, "kind": "verified", **overrides}


def test_an_integer_beyond_64_bits_is_refused_as_a_value_on_every_backend(store: Store) -> None:
    enrol(store)
    with pytest.raises(RefusedValueError) as raised:
        store.add_events("dev-1", [_event(release=2**63)])
    assert isinstance(raised.value, ProtocolError)
    assert not isinstance(raised.value, StoreError)
    assert store.list_events("dev-1") == []  # nothing of the batch was stored


def test_a_drop_counter_beyond_64_bits_is_refused_as_a_value(store: Store) -> None:
    enrol(store)
    with pytest.raises(RefusedValueError):
        store.add_telemetry("dev-1", [], 2**63, NOW)


def test_a_32_bit_column_refuses_more_on_postgresql_and_never_reports_a_failed_store(
    store: Store,
) -> None:
    try:
        store.create_enroll_token("h" * 64, labels={}, uses=2**31, expires_at=None, now=NOW)
    except RefusedValueError:
        assert store.dialect == "postgresql"
    else:
        assert store.dialect == "sqlite"  # SQLite's INTEGER holds 64 bits


def test_nul_in_text_is_refused_as_a_value_by_postgresql(store: Store) -> None:
    enrol(store)
    try:
        store.add_events("dev-1", [_event(detail="a\x00b")])
    except RefusedValueError:
        assert store.dialect == "postgresql"
    else:
        assert store.dialect == "sqlite"  # SQLite stores NUL in text


def test_a_negative_limit_is_never_a_failed_store(store: Store) -> None:
    try:
        store.list_events(None, limit=-1)
    except RefusedValueError:
        assert store.dialect == "postgresql"  # SQLite reads LIMIT -1 as no limit


def test_a_broken_unique_or_foreign_key_is_a_conflict_and_a_lost_database_a_store_failure() -> None:
    refused = classify_error(sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert isinstance(refused, RefusedRowError)
    assert isinstance(refused, ConflictError)
    lost = classify_error(sa.exc.OperationalError("SELECT 1", {}, Exception("server closed")))
    assert type(lost) is StoreError
    assert "server closed" in str(lost)
