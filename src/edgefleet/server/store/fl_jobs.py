"""Federated jobs, their rounds and each device's part in a round; transitions compare-and-set.

Every change of a job goes through its ``revision`` (as rollouts do), so two server processes
sharing a database open and close each round once. A round is stored with its participants
before any device hears of it, and closed together with the job's new global model, so a
restarted server resumes from exactly where the last transaction left the job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import FLJobRow, FLRoundRow, FLUpdateRow

__all__ = ["ACTIVE_FL_STATES", "FLStore", "lock_round"]

ACTIVE_FL_STATES = ("running",)
"""States in which a job still opens and closes rounds."""

_JOB_CHANGES = frozenset(
    {
        "state",
        "round",
        "model_sha256",
        "strategy_state",
        "privacy_state",
        "result_version",
        "reason",
    }
)


def lock_round(connection: Connection, job_id: str, round_: int) -> str:
    """Lock round ``round_`` of ``job_id`` for this transaction; its state.

    Raises
    ------
    NotFoundError
        No such round.
    """
    rounds = schema.fl_rounds
    found = connection.execute(
        sa.select(rounds.c.state)
        .where(rounds.c.job_id == job_id, rounds.c.round == round_)
        .with_for_update()
    ).first()
    if found is None:
        raise NotFoundError(f"job {job_id} has no round {round_}")
    return str(found.state)


def _job(row: Any) -> FLJobRow:
    return FLJobRow(
        job_id=row.job_id,
        model=row.model,
        base_version=row.base_version,
        task=row.task,
        selector=dict(row.selector),
        config=dict(row.config),
        state=row.state,
        round=row.round,
        model_sha256=row.model_sha256,
        strategy_state=dict(row.strategy_state),
        privacy_state=dict(row.privacy_state),
        result_version=row.result_version,
        reason=row.reason,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _round(row: Any) -> FLRoundRow:
    return FLRoundRow(
        job_id=row.job_id,
        round=row.round,
        state=row.state,
        opened_at=row.opened_at,
        deadline=row.deadline,
        closed_at=row.closed_at,
        model_hash=row.model_hash,
        model_sha256=row.model_sha256,
        result=dict(row.result),
    )


def _update(row: Any) -> FLUpdateRow:
    return FLUpdateRow(
        job_id=row.job_id,
        round=row.round,
        device_id=row.device_id,
        state=row.state,
        reason=row.reason,
        num_examples=int(row.num_examples),
        bytes_up=int(row.bytes_up),
        bytes_down=int(row.bytes_down),
        payload_sha256=row.payload_sha256,
        metrics=dict(row.metrics),
        updated_at=row.updated_at,
    )


class FLStore(StoreBase):
    """Federated jobs."""

    def create_fl_job(self, row: FLJobRow) -> FLJobRow:
        """Store a new job.

        Raises
        ------
        ConflictError
            The id is taken.
        """
        table = schema.fl_jobs
        with self._write() as connection:
            taken = connection.execute(
                sa.select(table.c.job_id).where(table.c.job_id == row.job_id)
            ).first()
            if taken is not None:
                raise ConflictError(f"federated job id {row.job_id} is taken")
            connection.execute(sa.insert(table).values(**row.__dict__))
        return row

    def get_fl_job(self, job_id: str) -> FLJobRow | None:
        """The job ``job_id``, or None."""
        table = schema.fl_jobs
        with self._read() as connection:
            found = connection.execute(sa.select(table).where(table.c.job_id == job_id)).first()
        return None if found is None else _job(found)

    def list_fl_jobs(self, *, states: tuple[str, ...] | None = None) -> list[FLJobRow]:
        """Jobs, newest first; only those in ``states`` when given."""
        table = schema.fl_jobs
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.job_id)
        if states is not None:
            query = query.where(table.c.state.in_(states))
        with self._read() as connection:
            return [_job(row) for row in connection.execute(query)]

    def update_fl_job(
        self, job_id: str, revision: int, now: float, changes: Mapping[str, Any]
    ) -> FLJobRow:
        """Apply ``changes`` if the job is still at ``revision`` (which then grows by one).

        Raises
        ------
        NotFoundError
            No such job.
        ConflictError
            The job moved on meanwhile (another process or an operator changed it).
        """
        with self._write() as connection:
            return self._cas_job(connection, job_id, revision, now, changes)

    def open_fl_round(
        self, job: FLJobRow, now: float, round_row: FLRoundRow, device_ids: Sequence[str]
    ) -> FLJobRow:
        """Store round ``round_row`` with ``device_ids`` assigned, and move the job to it.

        The job's reason (e.g. that it waits for devices) is cleared.

        One transaction, compare-and-set on the job's revision.

        Raises
        ------
        ConflictError
            The job moved on meanwhile.
        """
        with self._write() as connection:
            updated = self._cas_job(
                connection, job.job_id, job.revision, now, {"round": round_row.round, "reason": ""}
            )
            connection.execute(sa.insert(schema.fl_rounds).values(**round_row.__dict__))
            if device_ids:
                connection.execute(
                    sa.insert(schema.fl_updates),
                    [
                        {
                            "job_id": job.job_id,
                            "round": round_row.round,
                            "device_id": device_id,
                            "state": "assigned",
                            "reason": "",
                            "num_examples": 0,
                            "bytes_up": 0,
                            "bytes_down": 0,
                            "payload_sha256": None,
                            "metrics": {},
                            "updated_at": now,
                        }
                        for device_id in sorted(set(device_ids))
                    ],
                )
        return updated

    def close_fl_round(
        self,
        job: FLJobRow,
        now: float,
        round_: int,
        state: str,
        result: Mapping[str, Any],
        job_changes: Mapping[str, Any],
    ) -> FLJobRow:
        """Close an open round with its ``result`` and apply ``job_changes``, in one transaction.

        Raises
        ------
        ConflictError
            The job moved on, or the round is not open any more.
        """
        table = schema.fl_rounds
        with self._write() as connection:
            updated = self._cas_job(connection, job.job_id, job.revision, now, job_changes)
            closed = connection.execute(
                sa.update(table)
                .where(table.c.job_id == job.job_id, table.c.round == round_)
                .where(table.c.state == "open")
                .values(state=state, closed_at=now, result=dict(result))
            )
            if closed.rowcount != 1:
                raise ConflictError(f"round {round_} of job {job.job_id} is not open")
            updates = schema.fl_updates
            connection.execute(
                sa.update(updates)
                .where(updates.c.job_id == job.job_id, updates.c.round == round_)
                .where(updates.c.state == "assigned")
                .values(state="missed", reason="no update before the round closed", updated_at=now)
            )
        return updated

    def get_fl_round(self, job_id: str, round_: int) -> FLRoundRow | None:
        """Round ``round_`` of ``job_id``, or None."""
        table = schema.fl_rounds
        query = sa.select(table).where(table.c.job_id == job_id, table.c.round == round_)
        with self._read() as connection:
            found = connection.execute(query).first()
        return None if found is None else _round(found)

    def list_fl_rounds(self, job_id: str) -> list[FLRoundRow]:
        """Every round of ``job_id``, in order."""
        table = schema.fl_rounds
        query = sa.select(table).where(table.c.job_id == job_id).order_by(table.c.round)
        with self._read() as connection:
            return [_round(row) for row in connection.execute(query)]

    def find_fl_round_by_hash(self, job_id: str, model_hash: str) -> FLRoundRow | None:
        """The latest round of ``job_id`` whose global model has ``model_hash``, or None."""
        table = schema.fl_rounds
        query = (
            sa.select(table)
            .where(table.c.job_id == job_id, table.c.model_hash == model_hash)
            .order_by(table.c.round.desc())
            .limit(1)
        )
        with self._read() as connection:
            found = connection.execute(query).first()
        return None if found is None else _round(found)

    def list_fl_updates(self, job_id: str, round_: int | None = None) -> list[FLUpdateRow]:
        """The devices' parts in ``job_id`` (one round's when ``round_`` is given)."""
        table = schema.fl_updates
        query = sa.select(table).where(table.c.job_id == job_id)
        if round_ is not None:
            query = query.where(table.c.round == round_)
        with self._read() as connection:
            rows = connection.execute(query.order_by(table.c.round, table.c.device_id))
            return [_update(row) for row in rows]

    def get_fl_update(self, job_id: str, round_: int, device_id: str) -> FLUpdateRow | None:
        """``device_id``'s part in round ``round_`` of ``job_id``, or None (not selected)."""
        table = schema.fl_updates
        query = sa.select(table).where(
            table.c.job_id == job_id, table.c.round == round_, table.c.device_id == device_id
        )
        with self._read() as connection:
            found = connection.execute(query).first()
        return None if found is None else _update(found)

    def settle_fl_update(
        self,
        job_id: str,
        round_: int,
        device_id: str,
        now: float,
        *,
        state: str,
        reason: str = "",
        num_examples: int = 0,
        bytes_up: int = 0,
        payload_sha256: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> FLUpdateRow:
        """Record the outcome of ``device_id``'s part in an open round, once.

        Only an ``assigned`` part of an ``open`` round changes; the check and the write are
        one transaction, so an update racing the round's close is either in the aggregate or
        refused, never lost in between.

        Raises
        ------
        NotFoundError
            The device was not selected for that round (or there is no such round).
        ConflictError
            The round is closed, or the device's part was already settled (the message says
            which, and how).
        """
        updates = schema.fl_updates
        with self._write() as connection:
            round_state = lock_round(connection, job_id, round_)
            part = connection.execute(
                sa.select(updates).where(
                    updates.c.job_id == job_id,
                    updates.c.round == round_,
                    updates.c.device_id == device_id,
                )
            ).first()
            if part is None:
                raise NotFoundError(f"device {device_id} was not selected for round {round_}")
            if round_state != "open":
                raise ConflictError(f"round {round_} of job {job_id} is closed")
            if part.state != "assigned":
                raise ConflictError(
                    f"device {device_id} already sent round {round_} ({part.state}"
                    + (f": {part.reason})" if part.reason else ")")
                )
            connection.execute(
                sa.update(updates)
                .where(updates.c.id == part.id)
                .values(
                    state=state,
                    reason=reason,
                    num_examples=num_examples,
                    bytes_up=bytes_up,
                    payload_sha256=payload_sha256,
                    metrics=dict(metrics or {}),
                    updated_at=now,
                )
            )
            settled = connection.execute(sa.select(updates).where(updates.c.id == part.id))
            return _update(settled.one())

    def note_refused_fl_update(
        self, job_id: str, round_: int, device_id: str, reason: str, bytes_up: int, now: float
    ) -> None:
        """Note an update that was refused outright (round closed, device not selected...).

        A device with no part in the round gets a ``refused`` part; a device that had one
        keeps its state, with the refusal added to its reason. Accepted parts never change.
        """
        table = schema.fl_updates
        with self._write() as connection:
            part = connection.execute(
                sa.select(table.c.id, table.c.state, table.c.reason).where(
                    table.c.job_id == job_id,
                    table.c.round == round_,
                    table.c.device_id == device_id,
                )
            ).first()
            if part is None:
                connection.execute(
                    sa.insert(table).values(
                        job_id=job_id,
                        round=round_,
                        device_id=device_id,
                        state="refused",
                        reason=reason,
                        num_examples=0,
                        bytes_up=bytes_up,
                        bytes_down=0,
                        payload_sha256=None,
                        metrics={},
                        updated_at=now,
                    )
                )
            elif part.state != "accepted" and reason not in part.reason:
                joined = f"{part.reason}; {reason}" if part.reason else reason
                connection.execute(
                    sa.update(table)
                    .where(table.c.id == part.id)
                    .values(reason=joined[:2000], updated_at=now)
                )

    def add_fl_bytes_down(self, job_id: str, round_: int, device_id: str, count: int) -> None:
        """Count ``count`` more bytes of model sent to ``device_id`` for that round."""
        table = schema.fl_updates
        with self._write() as connection:
            connection.execute(
                sa.update(table)
                .where(
                    table.c.job_id == job_id,
                    table.c.round == round_,
                    table.c.device_id == device_id,
                )
                .values(bytes_down=table.c.bytes_down + count)
            )

    @staticmethod
    def _cas_job(
        connection: Connection, job_id: str, revision: int, now: float, changes: Mapping[str, Any]
    ) -> FLJobRow:
        unknown = set(changes) - _JOB_CHANGES
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a federated job")
        table = schema.fl_jobs
        result = connection.execute(
            sa.update(table)
            .where(table.c.job_id == job_id, table.c.revision == revision)
            .values(**changes, revision=revision + 1, updated_at=now)
        )
        if result.rowcount != 1:
            exists = connection.execute(
                sa.select(table.c.revision).where(table.c.job_id == job_id)
            ).first()
            if exists is None:
                raise NotFoundError(f"no federated job {job_id!r}")
            raise ConflictError(
                f"federated job {job_id} changed meanwhile (revision {exists.revision}, "
                f"expected {revision}); read it again"
            )
        return _job(connection.execute(sa.select(table).where(table.c.job_id == job_id)).one())
