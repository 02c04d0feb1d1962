"""Pure telemetry algorithms used on devices and on the server.

Latency sketches, confidence statistics, snapshots that serialise and merge, the recorder
the runtime calls on every inference, and temperature-scaling calibration. Energy meters and
thermal readers live in :mod:`edgefleet.telemetry.energy` and :mod:`edgefleet.telemetry.thermal`.
"""

from edgefleet.telemetry.calibration import TemperatureScaling, fit_temperature
from edgefleet.telemetry.confidence import ConfidenceExtractor, MaxProbability
from edgefleet.telemetry.confidence_stats import ConfidenceStats
from edgefleet.telemetry.latency_sketch import LatencySketch
from edgefleet.telemetry.recorder import InferenceRecorder, RowRing
from edgefleet.telemetry.snapshot import TelemetrySnapshot

__all__ = [
    "ConfidenceExtractor",
    "ConfidenceStats",
    "InferenceRecorder",
    "LatencySketch",
    "MaxProbability",
    "RowRing",
    "TelemetrySnapshot",
    "TemperatureScaling",
    "fit_temperature",
]
