"""Query and path parameters shared by the routers, bounded where they enter.

Every list endpoint takes its ``limit`` as :data:`Limit` (1 to :data:`MAX_LIMIT`); a round
number in a path is :data:`RoundPath` (it is stored in a 32-bit column); text that reaches a
query (a device id, a model name) is :data:`TextQuery` or :data:`TextPath`, which refuse NUL
characters. A value out of range is answered 422 with a message naming the parameter, before
any database sees it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from edgefleet.protocol.bounds import INT32_MAX, check_text

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Limit",
    "RoundPath",
    "TextPath",
    "TextQuery",
]

MAX_LIMIT = 1000
"""Most rows one page of a list endpoint returns."""
DEFAULT_LIMIT = 100

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Most rows returned (1 to {MAX_LIMIT}).")
]
"""``?limit=``: how many rows a list endpoint returns (give it a default, e.g. DEFAULT_LIMIT)."""


def _optional_text(value: str | None) -> str | None:
    return None if value is None else check_text(value)


RoundPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="Round number (from 1).")]
"""``{round_}`` in a path: a federated round number."""

TextQuery = Annotated[str | None, Query(), AfterValidator(_optional_text)]
"""An optional text query parameter (no NUL characters); give it the default ``None``."""

TextPath = Annotated[str, Path(), AfterValidator(check_text)]
"""A text path parameter (no NUL characters)."""
