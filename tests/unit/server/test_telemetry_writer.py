from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from edgefleet.errors import NotFoundError
from edgefleet.server.store import Store, TelemetryBatchRow
from edgefleet.server.telemetry_writer import TelemetryWriter

from .conftest import NOW, enrol


def window(window_id: str) -> dict[str, Any]:
    return {
        "window_id": window_id,
        "model": "digits",
        "version": "1",
        "started_at": NOW,
        "ended_at": NOW + 60,
        "snapshot": {"count": 1},
    }


def batch(device_id: str, *window_ids: str) -> TelemetryBatchRow:
    return TelemetryBatchRow(device_id, [window(w) for w in window_ids], 0, NOW + 61)


async def upload_together(writer: TelemetryWriter, batches: list[TelemetryBatchRow]) -> list[Any]:
    return await asyncio.gather(*(writer.add(b) for b in batches), return_exceptions=True)


def count_commits(store: Store) -> list[int]:
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    sa.event.listen(store._engine, "commit", on_commit)
    return commits


def test_uploads_arriving_together_share_transactions_and_each_gets_its_own_answer(
    store: Store,
) -> None:
    for index in range(3):
        enrol(store, f"dev-{index}")
    commits = count_commits(store)
    uploads = [batch(f"dev-{i % 3}", f"win-{i}", "win-shared") for i in range(12)]
    answers = asyncio.run(upload_together(TelemetryWriter(store), uploads))
    assert answers[:3] == [(2, 0)] * 3  # the first upload of each device stores both
    assert answers[3:] == [(1, 1)] * 9  # the later ones find "win-shared" stored
    assert len(store.list_telemetry()) == 12 + 3
    assert commits[0] < len(uploads)


def test_an_upload_from_an_unknown_device_fails_alone(store: Store) -> None:
    enrol(store, "dev-1")
    uploads = [batch("dev-1", "win-1"), batch("ghost", "win-2"), batch("dev-1", "win-3")]
    answers = asyncio.run(upload_together(TelemetryWriter(store), uploads))
    assert answers[0] == (1, 0)
    assert isinstance(answers[1], NotFoundError)
    assert "ghost" in str(answers[1])
    assert answers[2] == (1, 0)


def test_a_malformed_upload_fails_alone_and_the_others_in_its_group_are_stored(
    store: Store,
) -> None:
    enrol(store, "dev-1")
    broken = TelemetryBatchRow("dev-1", [{"window_id": "win-bad"}], 0, NOW)
    uploads = [batch("dev-1", "win-1"), broken, batch("dev-1", "win-2")]
    answers = asyncio.run(upload_together(TelemetryWriter(store), uploads))
    assert answers[0] == (1, 0)
    assert isinstance(answers[1], ValueError)
    assert answers[2] == (1, 0)
    assert sorted(row.window_id for row in store.list_telemetry()) == ["win-1", "win-2"]


def test_one_upload_alone_is_stored_and_answered(store: Store) -> None:
    enrol(store, "dev-1")

    async def one() -> tuple[int, int]:
        return await TelemetryWriter(store).add(batch("dev-1", "win-1"))

    assert asyncio.run(one()) == (1, 0)
    with pytest.raises(NotFoundError):
        asyncio.run(TelemetryWriter(store).add(batch("ghost", "win-1")))
