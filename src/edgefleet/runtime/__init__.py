"""The on-device runtime: ONNX Runtime models, pipelines, hot swap and the OIP server.

>>> from edgefleet.runtime import load  # doctest: +SKIP
>>> model = load("digits.onnx", intra_op_threads=1)  # doctest: +SKIP
>>> model.predict({"input": x})["probabilities"]  # doctest: +SKIP
"""

from pathlib import Path
from typing import Any

from edgefleet.runtime.cache import ModelCache
from edgefleet.runtime.glue import GlueStep, register_glue
from edgefleet.runtime.model import Model, load
from edgefleet.runtime.options import LoadOptions
from edgefleet.runtime.pipeline import Pipeline, Stage, is_pipeline_file, load_pipeline
from edgefleet.runtime.repository import ModelRepository
from edgefleet.runtime.servable import Servable
from edgefleet.runtime.spec import TensorSpec

__all__ = [
    "GlueStep",
    "LoadOptions",
    "Model",
    "ModelCache",
    "ModelRepository",
    "Pipeline",
    "Servable",
    "Stage",
    "TensorSpec",
    "is_pipeline_file",
    "load",
    "load_any",
    "load_pipeline",
    "register_glue",
]


def load_any(path: str | Path, **options: Any) -> Model | Pipeline:
    """Load a model file (``.onnx``) or a pipeline definition (``.yaml``/``.yml``/``.json``)."""
    return load_pipeline(path, **options) if is_pipeline_file(path) else load(path, **options)
