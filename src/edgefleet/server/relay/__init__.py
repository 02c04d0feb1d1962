"""A regional relay: the device API passed through, federated updates aggregated in the region.

Started with ``edgefleet server --relay --upstream URL --region NAME --token TOKEN``; devices
labelled ``region=NAME`` use the relay's URL as their server. See ``docs/federated.md``.
"""

from __future__ import annotations

from edgefleet.server.relay.app import Relay, create_relay_app
from edgefleet.server.relay.holding import HeldRound, check_update
from edgefleet.server.relay.run import serve_relay
from edgefleet.server.relay.settings import RelaySettings

__all__ = ["HeldRound", "Relay", "RelaySettings", "check_update", "create_relay_app", "serve_relay"]
