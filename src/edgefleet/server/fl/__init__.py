"""Federated jobs on the control plane: job settings and round decisions (no I/O here).

The services in :mod:`edgefleet.server.services.fl` store jobs and rounds, talk to devices
through desired states, and call the math in :mod:`edgefleet.federated`.
"""

from edgefleet.server.fl.rounds import close_reason, select_devices
from edgefleet.server.fl.spec import JobConfig, max_update_bytes

__all__ = ["JobConfig", "close_reason", "max_update_bytes", "select_devices"]
