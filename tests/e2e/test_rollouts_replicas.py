"""One rollout, two `edgefleet server` processes on one PostgreSQL, agents on both.

The processes share the data dir (keys and artifacts) and the database, as in
``test_fleet_replicas.py``. Both run the evaluation loop every 0.5 s; a lease in the database
lets one of them evaluate at a time, and each transition is a compare-and-set on the rollout's
revision. Restarting each process in turn mid-rollout hands the lease from one to the other.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from edgefleet.testing.fleet import ServerProcess
from edgefleet.testing.models import DigitsData
from edgefleet.testing.pytest_postgres import (  # noqa: F401 (fixtures used by name)
    postgres_server,
    postgres_url,
)

from .fleet_helpers import deploy, start_agent, wait_for
from .rollout_helpers import (  # noqa: F401 (fixtures used by name)
    SERVER_ENV,
    Traffic,
    calibration_fixture,
    gate,
    models_fixture,
    on_version,
    push_calibrated,
    stack_fixture,
    start,
    state_is,
    status,
    stop_together,
)

pytestmark = pytest.mark.slow


def _rollout_record(result: dict[str, Any]) -> dict[str, Any]:
    """A status without the device counts (read from each process's heartbeat buffer)."""
    return {k: v for k, v in result.items() if k != "devices"}


def test_two_server_processes_on_one_postgresql_carry_one_rollout_through_each_stage_once(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> None:
    """A good candidate reaches every device, whichever process evaluates which stage.

    Two agents talk to each process. The rollout starts on the second process; each process
    is restarted once while it runs, so the evaluation moves between them. The timeline has
    each stage transition once (``advanced`` to stage 1, then 2, then one ``completed`` and
    one ``applied``), and both processes answer the same status.
    """
    env = {**SERVER_ENV, "EDGEFLEET_DATABASE_URL": postgres_url}
    first = stack.enter_context(ServerProcess.start(tmp_path / "server", env=env))
    second = stack.enter_context(ServerProcess.start(tmp_path / "server", env=env))
    servers = (first, second)
    token = first.enroll_token(uses=4)
    agents = [start_agent(stack, tmp_path, f"a{i}", servers[i % 2].url, token) for i in range(4)]
    stack.callback(stop_together, agents)
    push_calibrated(first, models["good"], "1", calibration)
    deploy(second, "1")
    for agent in agents:
        wait_for(f"{agent.data_dir.name} on version 1", on_version(agent, "1"))
    traffic = Traffic(agents, digits)
    stack.callback(traffic.stop)

    push_calibrated(second, models["other"], "2", calibration)
    rollout = start(
        second,
        "2",
        "canary:25%:1s,50%:4s,100%:1s",
        gate("accuracy_delta>=-0.03"),
        gate("error_rate_delta<=0.01"),
    )
    wait_for("stage 1", lambda: status(first, rollout)["stage"] >= 1)
    first.restart()
    second.restart()
    wait_for(
        "the rollout to end",
        lambda: state_is(first, rollout, "completed", "rolled_back", "paused"),
        120,
    )
    wait_for("its effects to be applied", lambda: status(second, rollout)["status"]["applied"])

    seen = [status(server, rollout) for server in servers]
    assert seen[0]["state"] == "completed", seen[0]["reason"]
    timeline = seen[0]["timeline"]
    kinds = Counter(e["kind"] for e in timeline)
    assert (kinds["started"], kinds["completed"], kinds["applied"]) == (1, 1, 1)
    assert [e["stage"] for e in timeline if e["kind"] == "advanced"] == [1, 2]
    assert [e["kind"] for e in timeline if e["kind"] != "advanced"][-2:] == [
        "completed",
        "applied",
    ]
    assert _rollout_record(seen[0]) == _rollout_record(seen[1])

    for agent in agents:
        wait_for(f"{agent.data_dir.name} on 2", on_version(agent, "2"))
    wait_for(
        "both processes to count every device on the candidate",
        lambda: all(
            status(server, rollout)["devices"] == {"targeted": 4, "on_candidate": 4}
            for server in servers
        ),
    )
    assert traffic.errors == 0
