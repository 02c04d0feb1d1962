"""Models built from code: nothing is downloaded, everything is deterministic and cached."""

from edgefleet.testing.models._cache import DEFAULT_CACHE_DIR
from edgefleet.testing.models.detector import build_detector, compose_canvas, window_boxes
from edgefleet.testing.models.digits import DigitsData, build_digits_classifier, digits_data
from edgefleet.testing.models.echo import ECHO_TYPES, build_echo_model
from edgefleet.testing.models.matmul import build_matmul_classifier
from edgefleet.testing.models.resnet import build_resnet18

__all__ = [
    "DEFAULT_CACHE_DIR",
    "ECHO_TYPES",
    "DigitsData",
    "build_detector",
    "build_digits_classifier",
    "build_echo_model",
    "build_matmul_classifier",
    "build_resnet18",
    "compose_canvas",
    "digits_data",
    "window_boxes",
]
