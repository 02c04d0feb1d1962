"""Group commit for telemetry uploads: batches that arrive together share one transaction.

Every device uploads a telemetry batch each minute, and each upload must be stored before it
is acknowledged (the agent then deletes it from its spool). One transaction per upload made the
uploads queue behind each other on the database's write lock, so the server collects the
uploads that arrive while a write is in progress and stores them together in the next one.
Each upload still gets its own answer, and it is sent only after its transaction committed.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from edgefleet.errors import NotFoundError
from edgefleet.server.store import Store, TelemetryBatchRow

__all__ = ["TelemetryWriter"]

MAX_GROUP = 256
"""Most uploads stored in one transaction."""

_Waiting = tuple[TelemetryBatchRow, "asyncio.Future[tuple[int, int]]"]


class TelemetryWriter:
    """Stores telemetry batches with one writer at a time, grouping those that wait."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, batch: TelemetryBatchRow) -> tuple[int, int]:
        """Store ``batch``; return ``(accepted, duplicates)`` once it is committed.

        Raises
        ------
        NotFoundError
            The batch's device does not exist.
        StoreError, ValueError
            The database failed, or the batch is malformed (other uploads are not affected).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._waiting.append((batch, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_all())
        return await done

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                results = await run_in_threadpool(
                    self._store.add_telemetry_batches, [batch for batch, _ in group]
                )
            except Exception:
                await self._write_each(group)
                continue
            for (batch, done), result in zip(group, results, strict=True):
                if done.done():  # the client went away; its windows are stored anyway
                    continue
                if result is None:
                    done.set_exception(NotFoundError(f"no device {batch.device_id!r}"))
                else:
                    done.set_result(result)

    async def _write_each(self, group: list[_Waiting]) -> None:
        for batch, done in group:
            try:
                result = await run_in_threadpool(
                    self._store.add_telemetry,
                    batch.device_id,
                    batch.windows,
                    batch.dropped_total,
                    batch.received_at,
                )
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(result)
