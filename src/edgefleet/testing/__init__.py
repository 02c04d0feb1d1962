"""Helpers shipped with edgefleet for tests, demos and benchmarks: models built from code."""
