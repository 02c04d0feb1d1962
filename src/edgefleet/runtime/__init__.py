"""The on-device runtime: ONNX Runtime models, pipelines, hot swap and the OIP server."""

from edgefleet.runtime.model import Model, load
from edgefleet.runtime.options import LoadOptions
from edgefleet.runtime.spec import TensorSpec

__all__ = ["LoadOptions", "Model", "TensorSpec", "load"]
