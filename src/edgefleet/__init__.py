"""edgefleet: run ML models on edge devices and manage the fleet around them."""

__version__ = "0.1.0"
