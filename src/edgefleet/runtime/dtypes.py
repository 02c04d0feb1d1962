"""Element types: ONNX Runtime type strings, numpy dtypes and Open Inference Protocol names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefleet.errors import UnsupportedError

__all__ = ["ElementType", "from_datatype", "from_numpy", "from_ort"]


@dataclass(frozen=True)
class ElementType:
    """One element type as every side spells it."""

    ort: str
    """ONNX Runtime's name, e.g. ``tensor(float)``."""
    datatype: str
    """Open Inference Protocol name, e.g. ``FP32``."""
    numpy: np.dtype[np.generic]
    """numpy dtype (``object`` for strings)."""

    @property
    def is_string(self) -> bool:
        """Whether elements are strings (OIP ``BYTES``)."""
        return self.datatype == "BYTES"

    @property
    def is_float(self) -> bool:
        """Whether elements are floating point (where NaN and infinity can appear)."""
        return self.datatype in ("FP16", "FP32", "FP64")


_TYPES = [
    ElementType("tensor(bool)", "BOOL", np.dtype(np.bool_)),
    ElementType("tensor(uint8)", "UINT8", np.dtype(np.uint8)),
    ElementType("tensor(uint16)", "UINT16", np.dtype(np.uint16)),
    ElementType("tensor(uint32)", "UINT32", np.dtype(np.uint32)),
    ElementType("tensor(uint64)", "UINT64", np.dtype(np.uint64)),
    ElementType("tensor(int8)", "INT8", np.dtype(np.int8)),
    ElementType("tensor(int16)", "INT16", np.dtype(np.int16)),
    ElementType("tensor(int32)", "INT32", np.dtype(np.int32)),
    ElementType("tensor(int64)", "INT64", np.dtype(np.int64)),
    ElementType("tensor(float16)", "FP16", np.dtype(np.float16)),
    ElementType("tensor(float)", "FP32", np.dtype(np.float32)),
    ElementType("tensor(double)", "FP64", np.dtype(np.float64)),
    ElementType("tensor(string)", "BYTES", np.dtype(object)),
]
_BY_ORT = {t.ort: t for t in _TYPES}
_BY_DATATYPE = {t.datatype: t for t in _TYPES}
_BY_NUMPY = {t.numpy: t for t in _TYPES if not t.is_string}


def from_ort(name: str) -> ElementType:
    """Look up an ONNX Runtime type string; raise :class:`UnsupportedError` for others."""
    try:
        return _BY_ORT[name]
    except KeyError:
        raise UnsupportedError(f"element type {name} is not supported") from None


def from_datatype(name: str) -> ElementType:
    """Look up an Open Inference Protocol datatype; raise :class:`UnsupportedError` for others."""
    try:
        return _BY_DATATYPE[name]
    except KeyError:
        known = ", ".join(_BY_DATATYPE)
        raise UnsupportedError(f"datatype {name!r} is not supported (known: {known})") from None


def from_numpy(dtype: np.dtype[np.generic]) -> ElementType:
    """Look up a numpy dtype; strings of any kind map to ``BYTES``."""
    if dtype.kind in "OUS":
        return _BY_DATATYPE["BYTES"]
    try:
        return _BY_NUMPY[dtype]
    except KeyError:
        raise UnsupportedError(f"numpy dtype {dtype} has no inference datatype") from None
