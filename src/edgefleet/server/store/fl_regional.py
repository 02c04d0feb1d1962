"""Regional aggregates of federated rounds: one relay's upload standing for its devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from edgefleet.errors import ConflictError, ForbiddenError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.fl_jobs import lock_round

__all__ = ["FLRegionalStore"]


class FLRegionalStore(StoreBase):
    """Federated rounds: taking a regional relay's aggregate."""

    def settle_regional_fl_update(
        self,
        job_id: str,
        round_: int,
        part_id: str,
        device_ids: Sequence[str],
        now: float,
        *,
        reason: str,
        num_examples: int,
        bytes_up: int,
        payload_sha256: str,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a regional aggregate as part ``part_id`` and settle ``device_ids`` as in region.

        One transaction: the round must be open, ``part_id`` must not have a part yet, and
        every listed device must hold an ``assigned`` part; otherwise nothing changes. The
        devices' parts become ``in_region`` with ``reason``; the aggregate's part is
        ``accepted`` with the payload's hash, the example count and the bytes uploaded.

        Raises
        ------
        NotFoundError
            No such round.
        ForbiddenError
            A listed device was not selected for the round.
        ConflictError
            The round is closed, the region already sent this round, or a device's part was
            already settled (the message names the device).
        """
        updates = schema.fl_updates
        with self._write() as connection:
            if lock_round(connection, job_id, round_) != "open":
                raise ConflictError(f"round {round_} of job {job_id} is closed")
            in_round = updates.c.job_id == job_id, updates.c.round == round_
            parts = {
                row.device_id: row
                for row in connection.execute(
                    sa.select(updates.c.id, updates.c.device_id, updates.c.state).where(
                        *in_round, updates.c.device_id.in_([part_id, *device_ids])
                    )
                )
            }
            if part_id in parts:
                raise ConflictError(f"{part_id} already sent round {round_} of job {job_id}")
            for device_id in device_ids:
                part = parts.get(device_id)
                if part is None or part.state == "refused":
                    raise ForbiddenError(f"device {device_id} was not selected for round {round_}")
                if part.state != "assigned":
                    raise ConflictError(
                        f"device {device_id} already sent round {round_} ({part.state})"
                    )
            connection.execute(
                sa.update(updates)
                .where(updates.c.id.in_([parts[d].id for d in device_ids]))
                .values(state="in_region", reason=reason, updated_at=now)
            )
            connection.execute(
                sa.insert(updates).values(
                    job_id=job_id,
                    round=round_,
                    device_id=part_id,
                    state="accepted",
                    reason=reason,
                    num_examples=num_examples,
                    bytes_up=bytes_up,
                    bytes_down=0,
                    payload_sha256=payload_sha256,
                    metrics=dict(metrics or {}),
                    updated_at=now,
                )
            )
