"""JSON parsing with a bound on nesting depth, checked before the parser recurses.

Python's ``json`` module recurses once per nesting level, so a body of 100,000 ``[`` exhausts
the interpreter's recursion limit (``RecursionError``, which no caller expects). The depth is
measured first with a linear, non-recursive scan over the bytes, vectorised with numpy so a
body of many megabytes costs milliseconds.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgefleet.errors import ProtocolError

__all__ = ["MAX_JSON_DEPTH", "json_depth", "loads_bounded"]

MAX_JSON_DEPTH = 100
"""Deepest nesting accepted: room for a tensor of the greatest rank (64) inside a request."""

_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)


def json_depth(data: bytes) -> int:
    r"""Deepest nesting of arrays and objects in a JSON text, ignoring brackets inside strings.

    Malformed text gives some number; the parser reports what is wrong with it afterwards.

    Examples
    --------
    >>> json_depth(b'{"a": [1, [2]], "b": "[[[[["}')
    3
    >>> json_depth(b'"\\"')
    0
    >>> json_depth(b"[" * 5 + b"]" * 5)
    5
    """
    # an escaped backslash first (so that in \\" the quote still ends the string), then
    # escaped quotes, then every other escape, then everything that is not a quote or bracket
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\", b"")
    marks = np.frombuffer(text.translate(None, _DROP), dtype=np.uint8)
    if marks.size == 0:
        return 0
    quotes = marks == ord('"')
    outside = (np.cumsum(quotes) % 2 == 0) & ~quotes
    step = np.zeros(marks.size, dtype=np.int64)
    step[outside & ((marks == ord("[")) | (marks == ord("{")))] = 1
    step[outside & ((marks == ord("]")) | (marks == ord("}")))] = -1
    return int(max(0, int(np.cumsum(step).max())))


def loads_bounded(data: bytes, *, max_depth: int = MAX_JSON_DEPTH, what: str = "body") -> Any:
    """Parse JSON, refusing text nested deeper than ``max_depth`` before parsing it.

    Raises
    ------
    ProtocolError
        The text is not JSON, or nests deeper than ``max_depth``.
    """
    if data.count(b"[") + data.count(b"{") > max_depth:  # otherwise it cannot be too deep
        depth = json_depth(data)
        if depth > max_depth:
            raise ProtocolError(
                f"{what} nests JSON {depth} levels deep; at most {max_depth} are accepted"
            )
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # a thread with a small stack; the depth bound should prevent it
        raise ProtocolError(f"{what} nests JSON too deeply") from None
