"""Operator tokens and enrolment tokens (only hashes of the secrets are stored)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import EnrollTokenRow, OperatorTokenRow

__all__ = ["TokenStore"]


def _enroll_row(row: Any) -> EnrollTokenRow:
    return EnrollTokenRow(
        id=row.id,
        token_hash=row.token_hash,
        labels=dict(row.labels),
        uses=row.uses,
        remaining=row.remaining,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class TokenStore(StoreBase):
    """Operator and enrolment tokens."""

    def create_operator_token(self, token_hash: str, name: str, now: float) -> int:
        """Store an operator token's hash under a descriptive ``name``; return its id.

        Raises
        ------
        ConflictError
            A token with this hash exists already.
        """
        table = schema.operator_tokens
        statement = (
            self._insert(table)
            .values(token_hash=token_hash, name=name, created_at=now)
            .on_conflict_do_nothing(index_elements=[table.c.token_hash])
            .returning(table.c.id)
        )
        with self._write() as connection:
            token_id = connection.execute(statement).scalar()
        if token_id is None:
            raise ConflictError("an operator token with this hash exists already")
        return int(token_id)

    def find_operator_token(self, token_hash: str) -> OperatorTokenRow | None:
        """The operator token with this hash, or None."""
        table = schema.operator_tokens
        with self._read() as connection:
            row = connection.execute(
                sa.select(table).where(table.c.token_hash == token_hash)
            ).first()
        if row is None:
            return None
        return OperatorTokenRow(
            id=row.id, token_hash=row.token_hash, name=row.name, created_at=row.created_at
        )

    def create_enroll_token(
        self,
        token_hash: str,
        *,
        labels: dict[str, str],
        uses: int | None,
        expires_at: float | None,
        now: float,
    ) -> EnrollTokenRow:
        """Store an enrolment token.

        Parameters
        ----------
        token_hash
            Hash of the secret the devices present.
        labels
            Labels every device enrolled with this token receives.
        uses
            How many devices it may enrol (None: no limit).
        expires_at
            When it stops working (None: never).
        now
            The creation time.

        Raises
        ------
        ValueError
            ``uses`` is below 1.
        ConflictError
            A token with this hash exists already.
        """
        if uses is not None and uses < 1:
            raise ValueError(f"an enrolment token needs at least 1 use, not {uses}")
        table = schema.enroll_tokens
        values = {
            "token_hash": token_hash,
            "labels": dict(labels),
            "uses": uses,
            "remaining": uses,
            "expires_at": expires_at,
            "created_at": now,
        }
        with self._write() as connection:
            inserted = connection.execute(
                self._insert(table)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[table.c.token_hash])
                .returning(*table.c)
            ).first()
            if inserted is None:
                raise ConflictError("an enrolment token with this hash exists already")
            return _enroll_row(inserted)

    def consume_enroll_token(self, token_hash: str, now: float) -> EnrollTokenRow | None:
        """Use an enrolment token once: the token after the use, or None if it is not valid.

        Atomic across threads and processes: of two consumers of a token with one use left,
        exactly one gets the token back.

        Returns
        -------
        EnrollTokenRow or None
            The token with ``remaining`` already decremented, or None when the token is
            unknown, revoked, expired (``now >= expires_at``) or used up.
        """
        table = schema.enroll_tokens
        remaining = table.c.remaining
        expires_at = table.c.expires_at
        statement = (
            sa.update(table)
            .where(
                table.c.token_hash == token_hash,
                table.c.revoked_at.is_(None),
                sa.or_(remaining.is_(None), remaining > 0),
                sa.or_(expires_at.is_(None), expires_at > now),
            )
            .values(remaining=sa.case((remaining.is_(None), None), else_=remaining - 1))
            .returning(*table.c)
        )
        with self._write() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _enroll_row(row)

    def list_enroll_tokens(self) -> list[EnrollTokenRow]:
        """Every enrolment token, oldest first (expired, used-up and revoked ones included)."""
        table = schema.enroll_tokens
        with self._read() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.id)).all()
        return [_enroll_row(row) for row in rows]

    def revoke_enroll_token(self, token_id: int, now: float) -> EnrollTokenRow:
        """Stop an enrolment token from enrolling anything more.

        Revoking twice keeps the first time.

        Raises
        ------
        NotFoundError
            No token ``token_id``.
        """
        table = schema.enroll_tokens
        with self._write() as connection:
            connection.execute(
                sa.update(table)
                .where(table.c.id == token_id, table.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = connection.execute(sa.select(table).where(table.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no enrolment token {token_id}")
        return _enroll_row(row)
