"""Running a session: an IOBinding fast path with a plain ``session.run`` fallback.

For each input shape the first call goes through ``session.run``. When every output shape of
that call is what the model's declared shapes predict, later calls with the same shapes copy
inputs into buffers bound once and read outputs from bound buffers (``run_with_iobinding``),
which costs about half of ``session.run`` on small models. Each thread has its own bindings.
Models with string tensors or data-dependent output shapes always take the plain path.

The runner also enforces the NaN policy: floating-point inputs are checked for NaN and
infinity on the flat view of the bound buffer the input was copied into anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from edgefleet.errors import NonFiniteInputError
from edgefleet.runtime.spec import TensorSpec
from edgefleet.runtime.validation import ShapeKey
from edgefleet.telemetry import InferenceRecorder, RowRing

_MAX_BINDINGS = 64
_get_ident = threading.get_ident
_all_finite = np.isfinite
_copy = np.ndarray.copy


class _Bound:
    """Buffers bound once, for one thread and one set of input shapes.

    When telemetry offers a :class:`RowRing` for the probability output, there is one binding
    per ring slot: call ``j`` writes its probabilities straight into slot ``j``.
    """

    __slots__ = ("bindings", "checks", "inputs", "outputs", "raw", "ring")

    def __init__(
        self,
        session: ort.InferenceSession,
        specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]],
        shapes: tuple[ShapeKey, list[tuple[int, ...]]],
        check: Sequence[bool],
        recorder: InferenceRecorder,
    ) -> None:
        inputs, outputs = specs
        self.inputs = [
            np.empty(s, dtype=t.type.numpy) for t, s in zip(inputs, shapes[0], strict=True)
        ]
        shared = [np.empty(s, dtype=t.type.numpy) for t, s in zip(outputs, shapes[1], strict=True)]
        # Flat views of the float input buffers whose finiteness must be checked.
        self.checks = [
            (i, b.reshape(-1)) for i, (b, c) in enumerate(zip(self.inputs, check, strict=True)) if c
        ]
        self.ring: RowRing | None = None
        slots: list[list[NDArray[Any]]] = [shared]
        for index, (spec, buf) in enumerate(zip(outputs, shared, strict=True)):
            ring = recorder.ring_for(spec.name, buf.shape) if buf.dtype == np.float32 else None
            if ring is not None:
                self.ring = ring
                slots = [[*shared[:index], row, *shared[index + 1 :]] for row in ring.rows]
                break
        self.outputs = slots
        self.bindings = []
        for slot in slots:
            binding = session.io_binding()
            for spec, buf in zip(inputs, self.inputs, strict=True):
                binding.bind_cpu_input(spec.name, buf)
            for spec, buf in zip(outputs, slot, strict=True):
                binding.bind_output(
                    spec.name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data
                )
            self.bindings.append(binding)
        # ONNX Runtime's Python wrapper of run_with_iobinding adds per-call bookkeeping for
        # WebGPU graph capture; when its internal objects are there, call the C++ binding
        # directly (see docs/design/2026-11-24-runtime-fast-path.md).
        self.raw = [getattr(b, "_iobinding", b) for b in self.bindings]


class SessionRunner:
    """Runs one ONNX Runtime session as fast as its model allows; thread-safe."""

    def __init__(
        self,
        session: ort.InferenceSession,
        model: str,
        specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]],
        symbols: Callable[[ShapeKey], dict[str, int]],
        recorder: InferenceRecorder,
        *,
        reject_non_finite: bool,
    ) -> None:
        self.session: ort.InferenceSession | None = session
        inner = getattr(session, "_sess", None)
        if inner is not None and hasattr(ort.IOBinding(session), "_iobinding"):
            self._raw_run = inner.run_with_iobinding
        else:  # pragma: no cover - other ONNX Runtime releases
            self._raw_run = session.run_with_iobinding
        self._recorder = recorder
        self.model = model
        self._inputs, self._outputs = list(specs[0]), list(specs[1])
        self._input_names = [s.name for s in self._inputs]
        self._symbols = symbols
        self._check = [reject_non_finite and s.type.is_float for s in self._inputs]
        self._any_check = any(self._check)
        self._bindable = not any(s.type.is_string for s in [*self._inputs, *self._outputs])
        # Per thread: input shapes -> bound buffers; shapes that cannot bind are in _plain.
        self._local = threading.local()
        self._plain: set[tuple[int, ShapeKey]] = set()
        self._lock = threading.Lock()

    def _thread_bindings(self) -> dict[ShapeKey, _Bound]:
        bindings: dict[ShapeKey, _Bound] = {}
        self._local.bound = bindings
        return bindings

    def run(self, arrays: list[NDArray[Any]], shapes: ShapeKey) -> tuple[list[NDArray[Any]], bool]:
        """Run the model on validated inputs.

        Returns the outputs in declared order, and whether the probability rows were already
        written into a telemetry ring. Raises :class:`NonFiniteInputError` when the NaN policy
        refuses an input.
        """
        try:
            bound = self._local.bound.get(shapes)
        except AttributeError:
            bound = self._thread_bindings().get(shapes)
        if bound is None:
            return self._run_plain((_get_ident(), shapes), arrays, shapes), False
        inputs = bound.inputs
        if len(inputs) == 1:
            inputs[0][...] = arrays[0]  # cheaper than np.copyto for small arrays
        else:
            for buf, arr in zip(inputs, arrays):  # noqa: B905 - same length by construction
                buf[...] = arr
        if bound.checks:
            for index, flat in bound.checks:
                if not _all_finite(flat).all():
                    self._refuse(index)
        ring = bound.ring
        if ring is None:
            self._raw_run(bound.raw[0], None)
            return list(map(_copy, bound.outputs[0])), False
        slot = ring.written
        self._raw_run(bound.raw[slot], None)
        outs = list(map(_copy, bound.outputs[slot]))  # cheaper than a comprehension
        ring.written = slot = slot + 1
        if slot == len(bound.bindings):
            self._recorder.ring_full(ring)
        return outs, True

    def _run_plain(
        self, key: tuple[int, ShapeKey], arrays: list[NDArray[Any]], shapes: ShapeKey
    ) -> list[NDArray[Any]]:
        if self._any_check:
            for index, (arr, check) in enumerate(zip(arrays, self._check, strict=True)):
                if check and not np.isfinite(arr).all():
                    self._refuse(index)
        session = self.session
        if session is None:
            raise RuntimeError("session is closed")
        feeds = dict(zip(self._input_names, arrays, strict=True))
        outs: list[NDArray[Any]] = session.run(None, feeds)
        if key not in self._plain:
            self._prepare(key, shapes, outs)
        return outs

    def _refuse(self, index: int) -> None:
        raise NonFiniteInputError(
            f"input {self._input_names[index]!r} of model {self.model!r} contains NaN or "
            "infinity, which this model refuses (nan_policy='reject')"
        )

    def _prepare(
        self, key: tuple[int, ShapeKey], shapes: ShapeKey, outs: list[NDArray[Any]]
    ) -> None:
        """Decide, from one plain run, whether these input shapes can use bound buffers."""
        predicted = self._predict_output_shapes(shapes) if self._bindable else None
        session = self.session
        if predicted is not None and session is not None and predicted == [o.shape for o in outs]:
            bindings = self._local.bound
            if len(bindings) >= _MAX_BINDINGS:
                bindings.clear()
            specs = (self._inputs, self._outputs)
            bindings[shapes] = _Bound(
                session, specs, (shapes, predicted), self._check, self._recorder
            )
        else:
            with self._lock:
                if len(self._plain) >= _MAX_BINDINGS:
                    self._plain.clear()
                self._plain.add(key)

    def _predict_output_shapes(self, shapes: ShapeKey) -> list[tuple[int, ...]] | None:
        symbols = self._symbols(shapes)
        result = []
        for spec in self._outputs:
            dims = []
            for d in spec.shape:
                if isinstance(d, int) and d >= 0:
                    dims.append(d)
                elif isinstance(d, str) and d in symbols:
                    dims.append(symbols[d])
                else:
                    return None
            result.append(tuple(dims))
        return result

    def close(self) -> None:
        """Drop the session and every binding; later runs fail."""
        self.session = None
        self._local = threading.local()  # drops this runner's reference to every binding
        with self._lock:
            self._plain.clear()
