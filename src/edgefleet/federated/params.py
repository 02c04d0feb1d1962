"""Model parameters as the federated code sees them: named float32 arrays, flattened on demand.

Strategies and codecs work on one flat float32 vector per model (``flatten``) and give the named
arrays back with ``unflatten``. The names are sorted, so two processes holding the same model
flatten it the same way whatever order they built it in.

Examples
--------
>>> import numpy as np
>>> params = {"fc.weight": np.ones((2, 3), np.float32), "fc.bias": np.zeros(2, np.float32)}
>>> flat, layout = flatten(params)
>>> flat.shape, [name for name, _ in layout]
((8,), ['fc.bias', 'fc.weight'])
>>> back = unflatten(flat, layout)
>>> bool(np.array_equal(back["fc.weight"], params["fc.weight"]))
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

__all__ = ["Layout", "Params", "Vector", "flatten", "layout_of", "unflatten"]

Vector = npt.NDArray[np.float32]
"""A flat float32 vector: a whole model's parameters or an update to them."""

Params = Mapping[str, npt.NDArray[np.float32]]
"""Named parameter arrays (a PyTorch ``state_dict`` turned into numpy)."""

Layout = list[tuple[str, tuple[int, ...]]]
"""``(name, shape)`` per array, in the order of the flat vector (sorted names)."""


def layout_of(params: Params) -> Layout:
    """The layout ``flatten`` uses for ``params``."""
    return [(name, tuple(int(d) for d in params[name].shape)) for name in sorted(params)]


def flatten(params: Params) -> tuple[Vector, Layout]:
    """One float32 vector of every array, by sorted name, and the layout to undo it."""
    layout = layout_of(params)
    if not layout:
        return np.zeros(0, np.float32), layout
    flat = np.concatenate([np.asarray(params[name], np.float32).ravel() for name, _ in layout])
    return flat, layout


def unflatten(flat: Vector, layout: Layout) -> dict[str, Vector]:
    """The named arrays of ``flat`` (copies); ``ValueError`` when the sizes do not match."""
    sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in layout]
    if flat.ndim != 1 or flat.size != sum(sizes):
        raise ValueError(
            f"a vector of shape {flat.shape} does not fit a layout of {sum(sizes)} parameters"
        )
    out: dict[str, Vector] = {}
    offset = 0
    for (name, shape), size in zip(layout, sizes, strict=True):
        out[name] = flat[offset : offset + size].reshape(shape).astype(np.float32, copy=True)
        offset += size
    return out
