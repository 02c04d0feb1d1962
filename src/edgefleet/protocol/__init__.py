"""The wire contract between the agent and the control plane.

Version 1 lives in :mod:`edgefleet.protocol.v1`: pydantic models for every body the device API
sends or receives. Both sides import these models, so a change to the contract is one change.
"""

from edgefleet.protocol import v1

__all__ = ["v1"]
