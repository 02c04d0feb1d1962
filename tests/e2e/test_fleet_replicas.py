"""Two `edgefleet server` processes on one PostgreSQL serve one fleet as if they were one.

Both processes share the data dir (keys and artifacts; on two hosts this would be shared
storage) and the database. Agents talk to different processes; operators use either. What one
process writes, the agents of the other see: desired states, releases and TUF metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from edgefleet.testing.fleet import ServerProcess
from edgefleet.testing.pytest_postgres import (  # noqa: F401 (fixtures used by name)
    postgres_server,
    postgres_url,
)

from .fleet_helpers import (
    MODEL,
    active_version,
    deploy,
    device_id,
    devices,
    push,
    start_agent,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def test_two_server_processes_on_one_postgresql_share_devices_releases_and_deployments(
    tmp_path: Path,
    stack: ExitStack,
    digits_path: Path,
    echo_path: Path,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> None:
    env = {"EDGEFLEET_DATABASE_URL": postgres_url}
    first = stack.enter_context(ServerProcess.start(tmp_path / "server", env=env))
    second = stack.enter_context(ServerProcess.start(tmp_path / "server", env=env))
    assert first.url != second.url
    token = first.enroll_token(uses=2)
    agents = [
        start_agent(stack, tmp_path, "on-first", first.url, token),
        start_agent(stack, tmp_path, "on-second", second.url, token),
    ]
    ids = {device_id(agent) for agent in agents}
    assert set(devices(first)) == set(devices(second)) == ids

    push(first, digits_path, "1")
    deploy(second, "1")  # a deployment made on one process reaches the other's agents
    wait_for(
        "both agents to activate 1",
        lambda: all(active_version(agent) == "1" for agent in agents),
    )

    # Pushes on both processes at once (3 is another model file): one release counter and one
    # TUF repository, so the agents verify what the other process published.
    with ThreadPoolExecutor(2) as pool:
        pushed = list(
            pool.map(
                lambda args: push(*args),
                [(first, digits_path, "2"), (second, echo_path, "3")],
            )
        )
    assert {row["version"] for row in pushed} == {"2", "3"}
    releases = [r["release"] for r in first.operator("GET", f"/models/{MODEL}")["releases"]]
    assert sorted(releases) == list(range(1, len(releases) + 1))

    deploy(first, "3")
    wait_for(
        "both agents to verify and activate 3",
        lambda: all(active_version(agent) == "3" for agent in agents),
    )
    seen = [{i: d["desired_version"] for i, d in devices(s).items()} for s in (first, second)]
    assert seen[0] == seen[1]
