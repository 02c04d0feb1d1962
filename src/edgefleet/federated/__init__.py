"""Federated learning math: aggregation strategies, update codecs, local training hooks.

Pure functions and small classes over numpy vectors; no transport, no persistence. The server
and the agent (and the simulator) call them; this package never imports either.
"""

from __future__ import annotations

from edgefleet.federated.params import Layout, Params, Vector, flatten, layout_of, unflatten

__all__ = ["Layout", "Params", "Vector", "flatten", "layout_of", "unflatten"]
