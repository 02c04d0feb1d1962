"""Pipelines: several models and glue steps chained in memory, used and served like one model.

A pipeline is defined in YAML or JSON::

    name: digit-reader
    stages:
      - name: detector
        model: detector.onnx            # relative to this file
      - name: crops
        glue: crop_regions
        params: {size: 8, max_regions: 4}
      - name: classifier
        model: digits.onnx
        inputs: {input: crops}          # model input name -> pipeline tensor
    outputs: [probabilities, region_boxes]

Every stage reads named tensors from the pipeline (its own input names, unless mapped with
``inputs``) and adds its outputs (renamed with ``outputs`` when needed). Arrays pass from stage
to stage as numpy arrays in memory. Each stage keeps its own telemetry; the pipeline's snapshot
carries them as ``stages``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from edgefleet.errors import (
    EdgefleetError,
    InferenceError,
    InputError,
    MissingInputError,
    ModelUnavailableError,
    PipelineError,
    UnexpectedInputError,
)
from edgefleet.runtime.glue import GlueStep, get_glue
from edgefleet.runtime.model import Model, load, wait_for_drain
from edgefleet.runtime.spec import TensorSpec
from edgefleet.telemetry import InferenceRecorder, MaxProbability, TelemetrySnapshot
from edgefleet.telemetry.totals import TelemetryTotals

__all__ = ["Pipeline", "Stage", "is_pipeline_file", "load_pipeline"]

_clock = time.perf_counter_ns


@dataclass
class Stage:
    """One step of a pipeline: a model or a glue step, with its tensor name mappings."""

    name: str
    model: Model | None = None
    glue: GlueStep | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    recorder: InferenceRecorder | None = None

    @property
    def reads(self) -> dict[str, str]:
        """Stage argument name -> pipeline tensor name."""
        names = [s.name for s in self.model.inputs] if self.model else list(self.glue.inputs)  # type: ignore[union-attr]
        return {n: self.inputs.get(n, n) for n in names}

    @property
    def writes(self) -> dict[str, TensorSpec]:
        """Pipeline tensor name -> spec, for everything this stage produces."""
        specs = self.model.outputs if self.model else list(self.glue.outputs)  # type: ignore[union-attr]
        return {self.outputs.get(s.name, s.name): s for s in specs}

    def new_writes(
        self, produced: Mapping[str, TensorSpec], pipeline: str
    ) -> dict[str, TensorSpec]:
        """:attr:`writes`, refusing a tensor an earlier stage already produced."""
        writes = self.writes
        for tensor in writes:
            if tensor in produced:
                raise PipelineError(
                    f"stage {self.name!r} of pipeline {pipeline!r} writes {tensor!r}, which an "
                    "earlier stage already produced; rename it with 'outputs'"
                )
        return writes


class _PipelineTelemetry:
    def __init__(self, pipeline: Pipeline, recorder: InferenceRecorder) -> None:
        self._pipeline = pipeline
        self.recorder = recorder

    def snapshot(self, *, reset: bool = False) -> TelemetrySnapshot:
        snap = self.recorder.snapshot(reset=reset)
        for stage in self._pipeline.stages:
            source = stage.model.telemetry if stage.model else stage.recorder
            assert source is not None
            snap.stages[stage.name] = source.snapshot(reset=reset)
        return snap

    def totals(self) -> TelemetryTotals:
        return self.recorder.totals()

    def discard(self) -> None:
        self.recorder.discard()
        for stage in self._pipeline.stages:
            source = stage.model.telemetry if stage.model else stage.recorder
            assert source is not None
            source.discard()


class Pipeline:
    """Stages run in order on one blackboard of named arrays; behaves like a :class:`Model`."""

    platform = "edgefleet_pipeline"

    def __init__(
        self, name: str, stages: list[Stage], outputs: list[str] | None = None, version: str = "1"
    ) -> None:
        if not stages:
            raise PipelineError(f"pipeline {name!r} has no stages")
        self.name = name
        self.version = version
        self.stages = stages
        produced: dict[str, TensorSpec] = {}
        inputs: dict[str, TensorSpec] = {}
        seen_stage_names: set[str] = set()
        for stage in stages:
            if stage.name in seen_stage_names:
                raise PipelineError(f"pipeline {name!r} has two stages named {stage.name!r}")
            seen_stage_names.add(stage.name)
            for arg, tensor in stage.reads.items():
                if tensor in produced or tensor in inputs:
                    continue
                if stage.model is None:
                    raise PipelineError(
                        f"stage {stage.name!r} reads {tensor!r}, which no earlier stage produces"
                    )
                spec = next(s for s in stage.model.inputs if s.name == arg)
                inputs[tensor] = TensorSpec(tensor, spec.type, spec.shape)
            for tensor, spec in stage.new_writes(produced, name).items():
                produced[tensor] = TensorSpec(tensor, spec.type, spec.shape)
        last = stages[-1]
        wanted = outputs if outputs else list(last.writes)
        missing = [t for t in wanted if t not in produced]
        if missing:
            names = ", ".join(map(repr, missing))
            raise PipelineError(f"pipeline {name!r} outputs {names}, which no stage produces")
        self.inputs = list(inputs.values())
        self.outputs = [produced[t] for t in wanted]
        self._input_names = frozenset(inputs)
        self._output_names = wanted
        self._inflight: list[None] = []
        self._closing = False
        extractor, classes = self._confidence()
        self.telemetry = _PipelineTelemetry(
            self, InferenceRecorder(name, version, extractor, classes=classes)
        )

    def _confidence(self) -> tuple[MaxProbability | None, int | None]:
        for stage in reversed(self.stages):
            if stage.model is None:
                continue
            extractor = stage.model.telemetry.extractor
            if isinstance(extractor, MaxProbability):
                tensor = stage.outputs.get(extractor.output, extractor.output)
                if tensor in self._output_names:
                    spec = next(s for s in self.outputs if s.name == tensor)
                    last = spec.shape[-1] if len(spec.shape) == 2 else None
                    return MaxProbability(tensor), last if isinstance(last, int) else None
            return None, None
        return None, None

    def predict(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run every stage in order; return the pipeline's outputs."""
        start = _clock()
        recorder = self.telemetry.recorder
        self._inflight.append(None)
        try:
            if self._closing:
                raise ModelUnavailableError(f"pipeline {self.name!r} is closed")
            names = set(feeds)
            if names != self._input_names:
                recorder.record_rejected()
                missing = sorted(self._input_names - names)
                extra = sorted(map(str, names - self._input_names))
                unknown = f"has no input(s) {', '.join(map(repr, extra))}" if extra else ""
                if missing:
                    needs = f"needs input(s) {', '.join(map(repr, missing))}"
                    raise MissingInputError(
                        f"pipeline {self.name!r} {unknown + ' and ' if extra else ''}{needs}"
                    )
                raise UnexpectedInputError(f"pipeline {self.name!r} {unknown}")
            board: dict[str, NDArray[Any]] = dict(feeds)
            try:
                for stage in self.stages:
                    self._run_stage(stage, board)
            except InputError:
                recorder.record_rejected()
                raise
            except EdgefleetError:
                recorder.record_error(_clock() - start)
                raise
            result = {n: board[n] for n in self._output_names}
            recorder.record(_clock() - start, result)
            return result
        finally:
            self._inflight.pop()

    @staticmethod
    def _run_stage(stage: Stage, board: dict[str, NDArray[Any]]) -> None:
        args = {arg: board[tensor] for arg, tensor in stage.reads.items()}
        if stage.model is not None:
            out = stage.model.predict(args)
        else:
            glue = stage.glue
            recorder = stage.recorder
            assert glue is not None
            assert recorder is not None
            t0 = _clock()
            try:
                out = glue.function(**args, **stage.params)
            except EdgefleetError:
                recorder.record_error(_clock() - t0)
                raise
            except Exception as exc:
                recorder.record_error(_clock() - t0)
                raise InferenceError(f"glue stage {stage.name!r} failed: {exc}") from exc
            recorder.record(_clock() - t0, out)
        rename = stage.outputs
        for key, value in out.items():
            board[rename.get(key, key)] = value

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closing

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, let running ones finish, close every model stage."""
        self._closing = True
        deadline = wait_for_drain(self._inflight, timeout)
        for stage in self.stages:
            if stage.model is not None:
                stage.model.close(max(0.0, deadline - time.monotonic()))

    def describe(self) -> dict[str, Any]:
        """Stages, tensors and versions as plain data."""
        return {
            "name": self.name,
            "version": self.version,
            "platform": self.platform,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "stages": [
                {
                    "name": s.name,
                    "model": s.model.describe() if s.model else None,
                    "glue": s.glue.name if s.glue else None,
                    "params": s.params,
                }
                for s in self.stages
            ],
        }


def is_pipeline_file(path: str | Path) -> bool:
    """Whether ``path`` names a pipeline definition (by suffix) rather than a model."""
    return Path(path).suffix.lower() in (".yaml", ".yml", ".json")


def load_pipeline(path: str | Path, **options: Any) -> Pipeline:
    """Load a pipeline definition; ``options`` are applied to every model stage.

    Raises :class:`PipelineError` naming what is wrong with the definition.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline definition {path}: {exc.strerror}") from None
    import yaml  # only pipelines need it: not imported on every agent and serve start

    try:
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("stages"), list):
        raise PipelineError(f"{path}: a pipeline needs a 'stages' list")
    unknown = sorted(set(spec) - {"name", "version", "stages", "outputs"})
    if unknown:
        raise PipelineError(f"{path}: unknown key(s) {', '.join(unknown)}")
    name = str(spec.get("name") or path.stem)
    version = str(options.pop("version", spec.get("version", "1")))
    options.pop("name", None)
    stages = []
    try:
        for i, raw in enumerate(spec["stages"]):
            stages.append(_stage(path, i, raw, options))
        outputs = spec.get("outputs")
        if outputs is not None and (
            not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs)
        ):
            raise PipelineError(f"{path}: 'outputs' must be a list of tensor names")
        return Pipeline(name, stages, outputs, version)
    except BaseException:
        for stage in stages:
            if stage.model is not None:
                stage.model.close()
        raise


def _stage(base: Path, index: int, raw: Any, options: dict[str, Any]) -> Stage:
    where = f"{base}: stages[{index}]"
    if not isinstance(raw, dict):
        raise PipelineError(f"{where} must be a mapping")
    unknown = sorted(set(raw) - {"name", "model", "glue", "params", "inputs", "outputs"})
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if ("model" in raw) == ("glue" in raw):
        raise PipelineError(f"{where} needs exactly one of 'model' or 'glue'")
    for key in ("inputs", "outputs", "params"):
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise PipelineError(f"{where}: '{key}' must be a mapping")
    name = str(raw.get("name") or f"stage{index}")
    mappings = {
        k: {str(a): str(b) for a, b in raw.get(k, {}).items()} for k in ("inputs", "outputs")
    }
    if "model" in raw:
        if raw.get("params"):
            raise PipelineError(f"{where}: model stages take no 'params'")
        model_path = base.parent / str(raw["model"])
        model = load(model_path, name=name, **options)
        stage = Stage(name, model=model, inputs=mappings["inputs"], outputs=mappings["outputs"])
        declared = {s.name for s in model.inputs}
    else:
        glue = get_glue(str(raw["glue"]))
        params = glue.bind(raw.get("params", {}))
        stage = Stage(
            name,
            glue=glue,
            params=params,
            recorder=InferenceRecorder(name, "1"),
            inputs=mappings["inputs"],
            outputs=mappings["outputs"],
        )
        declared = set(glue.inputs)
    bad = sorted(set(mappings["inputs"]) - declared)
    if bad:
        raise PipelineError(f"{where}: 'inputs' maps unknown argument(s) {', '.join(bad)}")
    return stage
