"""Input validation: names, element types, shapes against dynamic dimensions.

Shapes seen before are remembered, so the common case (the same shapes call after call) costs
one set lookup; only new shapes go through the full check. Whether floating-point inputs are
finite is checked by the session runner, on the buffer the input is copied into anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import (
    InputDTypeError,
    InputShapeError,
    MissingInputError,
    UnexpectedInputError,
)
from edgefleet.runtime.spec import TensorSpec

__all__ = ["InputValidator", "ShapeKey"]

ShapeKey = tuple[tuple[int, ...], ...]
"""The shapes of all inputs of one call, in input order."""
_MAX_REMEMBERED_SHAPES = 256


class InputValidator:
    """Checks feeds against a model's input specs and returns them in input order."""

    def __init__(self, model: str, specs: Sequence[TensorSpec]):
        self.model = model
        self.specs = list(specs)
        self.names = [s.name for s in self.specs]
        self._name_set = frozenset(self.names)
        self._plan = [(s.name, s.type.numpy) for s in self.specs]
        self._known_shapes: set[ShapeKey] = set()
        if len(self.specs) == 1:
            self.check = self._check_one  # type: ignore[method-assign]

    def _check_one(self, feeds: Mapping[str, Any]) -> tuple[list[NDArray[Any]], ShapeKey]:
        """:meth:`check` for the common single-input model, with less bookkeeping."""
        name, dtype = self._plan[0]
        try:
            arr = feeds[name]
            if len(feeds) != 1:
                raise KeyError(name)
        except (KeyError, TypeError):
            return self.check_general(feeds)
        if arr.__class__ is not np.ndarray or arr.dtype is not dtype:
            arr = self._coerce(0, arr)
        shapes = (arr.shape,)
        if shapes not in self._known_shapes:
            self._remember(shapes)
        return [arr], shapes

    def check(self, feeds: Mapping[str, Any]) -> tuple[list[NDArray[Any]], ShapeKey]:
        """Validate ``feeds``; return the arrays in input order and their shapes.

        Raises
        ------
        InputError
            Naming the input and what was expected.
        """
        return self.check_general(feeds)

    def check_general(self, feeds: Mapping[str, Any]) -> tuple[list[NDArray[Any]], ShapeKey]:
        """:meth:`check` for any number of inputs."""
        arrays = []
        try:
            for i, (name, dtype) in enumerate(self._plan):
                arr = feeds[name]
                if arr.__class__ is not np.ndarray or arr.dtype is not dtype:
                    arr = self._coerce(i, arr)
                arrays.append(arr)
        except KeyError:
            raise self._name_error(feeds) from None
        except TypeError:
            raise InputDTypeError(
                f"inputs for model {self.model!r} must be a mapping of input name to array, "
                f"got {type(feeds).__name__}"
            ) from None
        if len(feeds) != len(arrays):
            raise self._name_error(feeds)
        shapes = tuple([a.shape for a in arrays])
        if shapes not in self._known_shapes:
            self._remember(shapes)
        return arrays, shapes

    def _remember(self, shapes: ShapeKey) -> None:
        self._check_shapes(shapes)
        if len(self._known_shapes) >= _MAX_REMEMBERED_SHAPES:
            self._known_shapes.clear()
        self._known_shapes.add(shapes)

    def _name_error(self, feeds: Mapping[str, Any]) -> Exception:
        given = set(feeds)
        missing = [n for n in self.names if n not in given]
        unknown = sorted(map(str, given - self._name_set))
        expected = f"expected {_names(self.names)}"
        if unknown:
            gave = f"model {self.model!r} has no input(s) {_names(unknown)}"
            if missing:
                return MissingInputError(f"{gave} and needs {_names(missing)}; {expected}")
            return UnexpectedInputError(f"{gave}; {expected}")
        given_text = f"given {_names(sorted(map(str, given)))}" if given else "given none"
        return MissingInputError(
            f"model {self.model!r} needs input(s) {_names(missing)}; {given_text}; {expected}"
        )

    def _coerce(self, i: int, value: Any) -> NDArray[Any]:
        spec = self.specs[i]
        if spec.type.is_string:
            arr = np.asarray(value)
            if arr.dtype.kind == "U" or (arr.dtype.kind == "O" and _all_str(arr)):
                return arr.astype(object)
            raise InputDTypeError(
                f"input {spec.name!r} of model {self.model!r} expects strings (BYTES), "
                f"got {arr.dtype}"
            )
        if isinstance(value, np.ndarray) and value.dtype == spec.type.numpy:
            return np.asarray(value)  # an equal dtype object, or an ndarray subclass
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise InputDTypeError(
            f"input {spec.name!r} of model {self.model!r} expects {spec.datatype} "
            f"({spec.type.numpy}), got {got}"
        )

    def _check_shapes(self, shapes: ShapeKey) -> None:
        symbols: dict[str, tuple[int, str]] = {}
        for spec, shape in zip(self.specs, shapes, strict=True):
            if len(shape) != len(spec.shape):
                raise InputShapeError(
                    f"input {spec.name!r} of model {self.model!r} expects rank "
                    f"{len(spec.shape)} {spec.describe_shape()}, got shape {list(shape)}"
                )
            for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
                if isinstance(want, int) and want != got:
                    raise InputShapeError(
                        f"input {spec.name!r} of model {self.model!r} expects "
                        f"{spec.describe_shape()}, got {list(shape)} (axis {axis} must be {want})"
                    )
                if isinstance(want, str):
                    seen = symbols.setdefault(want, (got, spec.name))
                    if seen[0] != got:
                        raise InputShapeError(
                            f"dimension {want!r} is {seen[0]} in input {seen[1]!r} but {got} in "
                            f"input {spec.name!r} of model {self.model!r}"
                        )

    def symbols(self, shapes: ShapeKey) -> dict[str, int]:
        """Values of the symbolic dimensions for validated ``shapes``."""
        values: dict[str, int] = {}
        for spec, shape in zip(self.specs, shapes, strict=True):
            for want, got in zip(spec.shape, shape, strict=True):
                if isinstance(want, str):
                    values[want] = got
        return values


def _names(names: Sequence[str]) -> str:
    return ", ".join(map(repr, names))


def _all_str(arr: NDArray[Any]) -> bool:
    return all(isinstance(v, str) for v in arr.ravel())
