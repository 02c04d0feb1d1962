"""Operator API: list and revoke enrolment tokens (creating one is in ``api.operator``)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from edgefleet.protocol.bounds import INT64_MAX
from edgefleet.server.api.auth import CurrentOperator, context
from edgefleet.server.context import ServerContext
from edgefleet.server.store.rows import EnrollTokenRow

__all__ = ["EnrollToken", "router"]

router = APIRouter(prefix="/api/operator/v1", tags=["operator"])
Ctx = Annotated[ServerContext, Depends(context)]
TokenId = Annotated[int, Path(ge=1, le=INT64_MAX, description="The token's id.")]


class EnrollToken(BaseModel):
    """An enrolment token without its secret; ``state`` says whether it still enrols."""

    id: int
    labels: dict[str, str]
    uses: int | None
    remaining: int | None
    expires_at: float | None
    created_at: float
    revoked_at: float | None
    state: str

    @classmethod
    def of(cls, row: EnrollTokenRow, now: float) -> EnrollToken:
        """The token as the operator sees it at ``now``."""
        if row.revoked_at is not None:
            state = "revoked"
        elif row.expires_at is not None and now >= row.expires_at:
            state = "expired"
        elif row.remaining is not None and row.remaining <= 0:
            state = "used up"
        else:
            state = "active"
        return cls(
            id=row.id,
            labels=row.labels,
            uses=row.uses,
            remaining=row.remaining,
            expires_at=row.expires_at,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            state=state,
        )


@router.get("/enroll-tokens")
def list_enroll_tokens(ctx: Ctx, _: CurrentOperator) -> list[EnrollToken]:
    """Every enrolment token, oldest first, with its state."""
    now = time.time()
    return [EnrollToken.of(row, now) for row in ctx.store.list_enroll_tokens()]


@router.post("/enroll-tokens/{token_id}/revoke")
def revoke_enroll_token(ctx: Ctx, _: CurrentOperator, token_id: TokenId) -> EnrollToken:
    """Stop a token from enrolling more devices (devices it enrolled stay)."""
    now = time.time()
    return EnrollToken.of(ctx.store.revoke_enroll_token(token_id, now), now)
