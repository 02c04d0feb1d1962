"""A loaded ONNX model: inspection, validated prediction, telemetry, and draining on close."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from edgefleet.errors import (
    EdgefleetError,
    InferenceError,
    InputError,
    ModelLoadError,
    ModelUnavailableError,
)
from edgefleet.runtime._runner import SessionRunner
from edgefleet.runtime.calibrated import CalibratedMaxProbability
from edgefleet.runtime.dtypes import from_ort
from edgefleet.runtime.onnx_file import OnnxFacts, read_onnx_file
from edgefleet.runtime.options import LoadOptions, resolve_providers
from edgefleet.runtime.spec import Dim, TensorSpec
from edgefleet.runtime.validation import InputValidator
from edgefleet.telemetry import ConfidenceExtractor, InferenceRecorder, MaxProbability

__all__ = ["Model", "load"]

log = logging.getLogger(__name__)

Arrays = dict[str, NDArray[Any]]
_clock = time.perf_counter_ns


def load(path: str | Path, **options: Any) -> Model:
    """Load an ONNX model file and return a ready :class:`Model`.

    Keyword options are the fields of :class:`~edgefleet.runtime.options.LoadOptions`
    (``providers``, ``intra_op_threads``, ``spin_wait``, ``graph_optimization``,
    ``optimized_cache_dir``, ``nan_policy``, ``confidence``, ``name``, ``version``, ...).

    Raises
    ------
    ModelLoadError
        The file is missing, not ONNX, corrupt, or ONNX Runtime cannot load it.
    ConfigurationError
        An option is unknown or invalid, or a requested execution provider is not available.
    """
    return Model(Path(path), LoadOptions.from_kwargs(**options))


class Model:
    """One ONNX model behind an ONNX Runtime session. Thread-safe; create with :func:`load`.

    Attributes
    ----------
    name, version
        How the model is known and served.
    inputs, outputs
        Declared tensors, with dynamic dimensions as names (``"batch"``) or ``None``.
    providers
        Execution providers the session actually runs on, best first.
    telemetry
        The :class:`~edgefleet.telemetry.InferenceRecorder` every call writes to.
    """

    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, options: LoadOptions) -> None:
        self.path = path
        self.options = options
        self.name = options.name or path.stem
        self.version = options.version
        self.size_bytes, facts = _read_model(path)
        self.opset = facts.opset
        self._session = self._create_session()
        self.providers: list[str] = self._session.get_providers()
        meta = self._session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map)
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        extractor, classes = self._confidence(facts)
        self.telemetry = InferenceRecorder(self.name, self.version, extractor, classes=classes)
        self._validator = InputValidator(self.name, self.inputs)
        self._runner = SessionRunner(
            self._session,
            self.name,
            (self.inputs, self.outputs),
            self._validator.symbols,
            self.telemetry,
            reject_non_finite=options.nan_policy == "reject",
        )
        self._check = self._validator.check
        self._run = self._runner.run
        self._record = self.telemetry.record
        self._inflight: list[None] = []
        self._closing = False
        if options.warmup:
            self._warmup()

    # -- loading ------------------------------------------------------------------------------

    def _create_session(self) -> ort.InferenceSession:
        providers = resolve_providers(self.options.providers)
        so = self.options.session_options()
        source: str | bytes = str(self.path)
        cached = None
        if self.options.optimized_cache_dir is not None:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
            cached = self.options.optimized_path(digest, providers)
        if cached is not None and cached.is_file():
            source = str(cached)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        elif cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            so.optimized_model_filepath = str(cached)
        try:
            return ort.InferenceSession(source, so, providers=providers)
        except Exception as exc:
            if self.options.providers == "auto" and len(providers) > 1:
                log.warning(
                    "%s failed on %s (%s); falling back to CPU", self.path, providers[0], exc
                )
                try:
                    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
                except Exception as cpu_exc:
                    exc = cpu_exc
            raise ModelLoadError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc

    def _confidence(self, facts: OnnxFacts) -> tuple[ConfidenceExtractor | None, int | None]:
        choice = self.options.confidence
        if choice != "auto":
            return choice, None
        producers = facts.producers
        for spec in self.outputs:
            last = spec.shape[-1] if spec.shape else None
            if (
                producers.get(spec.name) == "Softmax"
                and spec.type.is_float
                and len(spec.shape) in (1, 2)
                and isinstance(last, int)
                and last > 1
            ):
                temperature = self.options.calibration_temperature
                if temperature is not None:  # computed per call, on the call's own rows
                    return CalibratedMaxProbability(spec.name, temperature), None
                # Rows of a (batch, classes) output are buffered and reduced in batches.
                return MaxProbability(spec.name), last if len(spec.shape) == 2 else None
        return None, None

    def confidence_of(self, outputs: Mapping[str, NDArray[Any]]) -> NDArray[np.floating] | None:
        """Per-sample confidence of ``outputs`` as telemetry records it (``None``: none)."""
        extractor = self.telemetry.extractor
        return None if extractor is None else extractor(outputs)

    def _warmup(self) -> None:
        feeds: dict[str, NDArray[Any]] = {}
        for spec in self.inputs:
            shape = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in spec.shape)
            if spec.type.is_string:
                feeds[spec.name] = np.full(shape, "", dtype=object)
            else:
                feeds[spec.name] = np.zeros(shape, dtype=spec.type.numpy)
        try:
            arrays, shapes = self._validator.check(feeds)
            self._runner.run(arrays, shapes)
            self._runner.run(arrays, shapes)  # the second run takes the bound path
        except Exception as exc:  # a model may legitimately refuse zeros
            log.debug("warm-up of %s skipped: %s", self.name, exc)
        self.telemetry.discard()  # warm-up calls are not the user's

    # -- inference ----------------------------------------------------------------------------

    def predict(self, feeds: Mapping[str, NDArray[Any]]) -> Arrays:
        """Run the model on ``feeds`` (input name to array); return output name to array.

        Raises
        ------
        InputError
            A missing or unexpected input name, wrong dtype or shape, or NaN where refused;
            the message names the input and what was expected.
        InferenceError
            ONNX Runtime failed on valid inputs.
        ModelUnavailableError
            The model has been closed.
        """
        start = _clock()
        inflight = self._inflight
        inflight.append(None)
        try:
            if self._closing:
                raise ModelUnavailableError(f"model {self.name!r} version {self.version} is closed")
            try:
                arrays, shapes = self._check(feeds)
                outs, in_ring = self._run(arrays, shapes)
            except InputError:
                self.telemetry.record_rejected()
                raise
            except Exception as exc:
                self.telemetry.record_error(time.perf_counter_ns() - start)
                raise InferenceError(f"model {self.name!r} failed: {exc}") from exc
            names = self._output_names  # a literal dict costs a tenth of dict(zip(...))
            result = (
                {names[0]: outs[0]} if len(names) == 1 else dict(zip(names, outs))  # noqa: B905
            )
            self._record(_clock() - start, result, in_ring)
            return result
        finally:
            inflight.pop()

    @property
    def in_flight(self) -> int:
        """Number of calls running now."""
        return len(self._inflight)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closing

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, wait for running ones (up to ``timeout`` s), free the session."""
        self._closing = True
        wait_for_drain(self._inflight, timeout)
        if self._inflight:
            log.warning("closing %s with %d calls still running", self.name, len(self._inflight))
        self._runner.close()

    def describe(self) -> dict[str, Any]:
        """Name, version, providers, tensors and metadata, as plain data."""
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "providers": self.providers,
            "opset": self.opset,
            "size_bytes": self.size_bytes,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "metadata": self.metadata,
        }

    @property
    def memory_estimate_bytes(self) -> int:
        """Estimated resident size: the file size, which weights dominate."""
        return self.size_bytes

    def __repr__(self) -> str:
        return f"<Model {self.name}:{self.version} on {self.providers[0]}>"


def wait_for_drain(inflight: list[None], timeout: float) -> float:
    """Wait until ``inflight`` (one entry per running call) empties or ``timeout`` passes.

    Returns the deadline (a ``time.monotonic`` value), so callers can share what is left of it.
    """
    deadline = time.monotonic() + timeout
    while inflight and time.monotonic() < deadline:
        time.sleep(0.001)
    return deadline


def _read_model(path: Path) -> tuple[int, OnnxFacts]:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"model file is empty: {path}")
    try:
        facts = read_onnx_file(path)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path} is not a valid ONNX model: {exc}") from exc
    return size, facts


def _spec(arg: Any) -> TensorSpec:
    shape: tuple[Dim, ...] = tuple(
        d if isinstance(d, str) else (d if isinstance(d, int) and d >= 0 else None)
        for d in (arg.shape or [])
    )
    try:
        element = from_ort(arg.type)
    except EdgefleetError as exc:
        raise ModelLoadError(f"tensor {arg.name!r}: {exc}") from exc
    return TensorSpec(arg.name, element, shape)
