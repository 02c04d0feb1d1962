"""Bearer authentication: operators and devices are told apart, and neither can act as the other.

A device credential can read and write only its own device's state (the device API derives
the device from the credential; no path or body names another device). Operator endpoints
refuse device credentials with 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from edgefleet.errors import AuthError, ForbiddenError
from edgefleet.server.context import ServerContext
from edgefleet.server.store.rows import OperatorTokenRow
from edgefleet.server.tokens import hash_token

__all__ = [
    "OPERATOR_NAME",
    "CurrentDevice",
    "CurrentOperator",
    "DeviceIdentity",
    "context",
    "current_device",
    "current_operator",
]

OPERATOR_NAME = "operator_name"
"""``request.state`` attribute: the name of the operator token that authenticated the request."""


async def context(request: Request) -> ServerContext:
    """The process's :class:`ServerContext` (async: FastAPI runs sync dependencies on a thread)."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing credential: send 'Authorization: Bearer <token>'")
    return token.strip()


@dataclass(frozen=True)
class DeviceIdentity:
    """The device a request's credential belongs to."""

    device_id: str


async def current_device(
    request: Request, ctx: Annotated[ServerContext, Depends(context)]
) -> DeviceIdentity:
    """The device whose credential signs this request (known credentials are cached)."""
    hashed = hash_token(_bearer(request))
    device_id = ctx.credentials.get(hashed)
    if device_id is None:
        # taken before the lookup: a revocation while it runs keeps its answer out of the cache
        generation = ctx.credentials.generation
        device = await run_in_threadpool(ctx.store.find_device_by_credential, hashed)
        if device is None:
            if await run_in_threadpool(ctx.store.find_operator_token, hashed) is not None:
                raise ForbiddenError("operator tokens cannot use the device API")
            raise AuthError("unknown or revoked device credential")
        device_id = device.device_id
        ctx.credentials.put(hashed, device_id, generation)
    return DeviceIdentity(device_id)


async def current_operator(
    request: Request, ctx: Annotated[ServerContext, Depends(context)]
) -> OperatorTokenRow:
    """The operator token of this request; device credentials get 403."""
    hashed = hash_token(_bearer(request))
    operator = await run_in_threadpool(ctx.store.find_operator_token, hashed)
    if operator is None:
        if await run_in_threadpool(ctx.store.find_device_by_credential, hashed) is not None:
            raise ForbiddenError("device credentials cannot use the operator API")
        raise AuthError("unknown operator token")
    setattr(request.state, OPERATOR_NAME, operator.name)  # the actor of its audit entry
    return operator


CurrentDevice = Annotated[DeviceIdentity, Depends(current_device)]
CurrentOperator = Annotated[OperatorTokenRow, Depends(current_operator)]
