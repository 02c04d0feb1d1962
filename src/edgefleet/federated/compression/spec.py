"""Codec specs: the short text that names a codec on the command line and in configs.

Grammar: ``NAME[:ITEM[,ITEM]...]``, where the first item may be a bare value (the sparsity, for
``topk`` and ``dgc``) and every other item is ``KEY=VALUE``.

==========================================  ===============================================
spec                                        codec
==========================================  ===============================================
``dense``                                   float32, exact
``fp16``                                    float16
``int8`` / ``int8:chunk=512``               int8 with a float32 scale per chunk (256)
``topk:0.99``                               top-k with error feedback, **99% sparsity**
                                            (sends 1%); ``values=fp32``
``dgc:0.999,momentum=0.9,clip=1.0``         Deep Gradient Compression at 99.9% sparsity;
                                            ``warmup=13``, ``start=0.9``, ``sample=0.01``,
                                            ``seed=0``, ``values=fp16|fp32``; ``dgc`` alone
                                            is ``dgc:0.999``
==========================================  ===============================================

The number after ``topk:`` and ``dgc:`` is always the **sparsity**, the fraction of values *not*
sent, never the fraction kept. Every codec also takes ``level=0..9`` (zlib level, default 6).
``spec_of`` gives the canonical text back: the sparsity, then only the options that differ from
their defaults, in a fixed order.

Examples
--------
>>> codec = from_spec("dgc:0.999, momentum=0.9,clip=1")
>>> spec_of(codec)
'dgc:0.999,momentum=0.9,clip=1.0'
>>> from_spec(spec_of(codec)) == codec
True
>>> try:
...     from_spec("topk:1.5")
... except ValueError as exc:
...     print(exc)
codec spec 'topk:1.5': sparsity is the fraction of values not sent, in [0, 1), got 1.5
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from edgefleet.federated.compression.base import Codec, CodecSpecError
from edgefleet.federated.compression.dense import DenseCodec
from edgefleet.federated.compression.dgc import DGCCodec
from edgefleet.federated.compression.quantize import Float16Codec, Int8Codec
from edgefleet.federated.compression.topk import TopKCodec

__all__ = ["CODECS", "from_spec", "spec_of"]

CODECS: dict[str, type[Codec]] = {
    "dense": DenseCodec,
    "fp16": Float16Codec,
    "int8": Int8Codec,
    "topk": TopKCodec,
    "dgc": DGCCodec,
}
"""Codec classes by spec name."""


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _optional_number(text: str) -> float | None:
    return None if text.lower() == "none" else _number(text)


def _choice(text: str) -> str:
    if text not in ("fp16", "fp32"):
        raise ValueError("expected fp16 or fp32")
    return text


_EXPECTED: dict[Callable[[str], Any], str] = {
    int: "an integer",
    _number: "a number",
    _optional_number: "a number or none",
    _choice: "fp16 or fp32",
}

_LEVEL: dict[str, Callable[[str], Any]] = {"level": int}
_OPTIONS: dict[str, dict[str, Callable[[str], Any]]] = {
    "dense": _LEVEL,
    "fp16": _LEVEL,
    "int8": {"chunk": int, **_LEVEL},
    "topk": {"sparsity": _number, "values": _choice, **_LEVEL},
    "dgc": {
        "sparsity": _number,
        "momentum": _number,
        "clip": _optional_number,
        "warmup": int,
        "start": _number,
        "sample": _number,
        "seed": int,
        "values": _choice,
        **_LEVEL,
    },
}
_POSITIONAL = {"topk": "sparsity", "dgc": "sparsity"}
_REQUIRED = {"topk": "sparsity"}


def from_spec(text: str) -> Codec:
    """The codec ``text`` names (a fresh state); :class:`CodecSpecError` (``ValueError``) if bad."""
    spec = text.strip()
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if not name:
        raise CodecSpecError(f"codec spec {text!r} is empty; expected e.g. {', '.join(CODECS)}")
    if name not in CODECS:
        raise CodecSpecError(
            f"unknown codec {name!r} in spec {text!r} (known: {', '.join(CODECS)})"
        )
    options = _OPTIONS[name]
    kwargs: dict[str, Any] = {}
    items = [item.strip() for item in rest.split(",")] if rest.strip() else []
    for position, item in enumerate(items):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            if position != 0 or name not in _POSITIONAL:
                hint = (
                    f" (only the first may be a bare {_POSITIONAL[name]})"
                    if name in _POSITIONAL
                    else ""
                )
                raise CodecSpecError(f"codec spec {text!r}: {item!r} is not KEY=VALUE{hint}")
            key, value = _POSITIONAL[name], key
        if key not in options:
            known = ", ".join(options) or "none"
            raise CodecSpecError(
                f"codec spec {text!r}: unknown option {key!r} for {name} (known: {known})"
            )
        if key in kwargs:
            raise CodecSpecError(f"codec spec {text!r}: option {key!r} given twice")
        parse = options[key]
        try:
            kwargs[key] = parse(value)
        except ValueError:
            raise CodecSpecError(
                f"codec spec {text!r}: {key}={value!r} is not {_EXPECTED[parse]}"
            ) from None
    if name in _REQUIRED and _REQUIRED[name] not in kwargs:
        raise CodecSpecError(
            f"codec spec {text!r}: {name} needs a {_REQUIRED[name]}, e.g. '{name}:0.99' "
            "(the fraction of values not sent)"
        )
    try:
        return CODECS[name](**kwargs)
    except ValueError as exc:
        raise CodecSpecError(f"codec spec {text!r}: {exc}") from None


def spec_of(codec: Codec) -> str:
    """The canonical spec of ``codec``: ``from_spec(spec_of(c)) == c``."""
    return codec.spec()
