"""Putting a model behind its stable serving name, with its telemetry windows."""

from __future__ import annotations

from edgefleet.agent.reporter import WindowCollector
from edgefleet.runtime import ModelRepository, Servable
from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["swap_in"]


def swap_in(
    repository: ModelRepository,
    collector: WindowCollector,
    servable: Servable,
    *,
    rollback: bool = False,
    count: bool = True,
) -> TelemetrySnapshot | None:
    """Serve ``servable`` under its name in place of the active model; return the old telemetry.

    The swap is atomic between two inferences (:meth:`ModelRepository.swap`); a model served
    under another name is removed after the new one serves. The replaced model's last window
    goes to the spool and everything it recorded is returned (the new model's health baseline).
    With ``count`` the swap (or the ``rollback``) is counted in the next telemetry window.
    """
    old = collector.servable
    if servable.name in repository.names():
        repository.swap(servable)
    else:
        repository.add(servable)
    if old is not None and old.name != servable.name:
        repository.remove(old.name)
    baseline = collector.retire()
    collector.attach(servable)
    if count and (old is not None or rollback):
        collector.count_swap(rollback=rollback)
    return baseline
