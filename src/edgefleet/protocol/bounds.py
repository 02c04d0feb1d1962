r"""Constrained types for values that end up in a database column of a fixed width.

The control plane stores integers in 32-bit (``INTEGER``) and 64-bit (``BIGINT``) columns and
text in columns that cannot hold a NUL character (PostgreSQL). A value that does not fit is
refused where it enters (a request body, a query parameter), with a message naming the field,
instead of failing in the database. Each type is defined once here and used wherever such a
value crosses the wire.

=================  ==========================================  ==============================
type               accepts                                     for a column of
=================  ==========================================  ==============================
:data:`Count32`    0 .. 2**31 - 1                              ``INTEGER``
:data:`Positive32` 1 .. 2**31 - 1                              ``INTEGER`` (a round, a count)
:data:`Count64`    0 .. 2**63 - 1                              ``BIGINT``
:data:`Positive64` 1 .. 2**63 - 1                              ``BIGINT`` (a release, a size)
:data:`Finite`     a float that is neither NaN nor infinite    ``DOUBLE PRECISION``
:data:`Text`       a string without NUL characters             ``VARCHAR`` / ``TEXT``
:data:`Name`       :data:`Text` of at most 200 characters      ``VARCHAR(200)`` (names)
=================  ==========================================  ==============================

Examples
--------
>>> from pydantic import TypeAdapter, ValidationError
>>> TypeAdapter(Count64).validate_python(2**63 - 1) == INT64_MAX
True
>>> try:
...     TypeAdapter(Count64).validate_python(2**63)
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
Input should be less than or equal to 9223372036854775807
>>> try:
...     TypeAdapter(Text).validate_python("a\x00b")
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
Value error, must not contain NUL characters (\x00)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_NAME",
    "Count32",
    "Count64",
    "Finite",
    "Name",
    "Positive32",
    "Positive64",
    "Text",
    "check_text",
]

INT32_MAX = 2**31 - 1
"""Largest value of a 32-bit signed column (``INTEGER``)."""
INT64_MAX = 2**63 - 1
"""Largest value of a 64-bit signed column (``BIGINT``)."""
MAX_NAME = 200
"""Longest model name, version, or task (their columns are ``VARCHAR(200)``)."""

Count32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
"""A non-negative integer stored in a 32-bit column."""
Positive32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
"""A positive integer stored in a 32-bit column."""
Count64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative integer stored in a 64-bit column."""
Positive64 = Annotated[int, Field(ge=1, le=INT64_MAX)]
"""A positive integer stored in a 64-bit column."""
Finite = Annotated[float, Field(allow_inf_nan=False)]
"""A float that a database stores as it is (SQLite turns NaN into NULL)."""


def check_text(value: str) -> str:
    r"""Return ``value`` if a database can store it as text, else raise :class:`ValueError`.

    PostgreSQL text cannot hold NUL; an unpaired surrogate (``"\ud800"``) is no UTF-8 at all.

    >>> check_text("plant-3")
    'plant-3'
    >>> check_text("a\x00")
    Traceback (most recent call last):
    ...
    ValueError: must not contain NUL characters (\x00)
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\x00)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds an unpaired surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(check_text)]
"""A string a database can store: no NUL character, valid Unicode."""
Name = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(check_text)]
"""A model name, version or task: :data:`Text` of at most :data:`MAX_NAME` characters."""
