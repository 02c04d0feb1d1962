"""A regional relay keeps its devices' federated updates in the region (real processes).

Two agents labelled ``region=eu`` use an eu relay as their server; one labelled ``region=us``
talks to the control plane directly. The test asserts on what the control plane received and
stored: per round one ``region:eu`` aggregate, the eu devices ``in_region`` with no bytes and
no payload of their own, the us device's update accepted as usual.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from edgefleet.server.settings import load_settings
from edgefleet.server.store import open_store
from edgefleet.testing.fleet import AgentProcess, ServerProcess

from .fleet_helpers import AGENT_ENV, device_id, wait_for

pytest.importorskip("torch")

pytestmark = pytest.mark.slow


@contextmanager
def relay_process(log_path: Path, upstream: str, region: str, token: str) -> Iterator[str]:
    """``edgefleet server --relay`` in a subprocess; yields its URL, SIGTERM at the end."""
    args = ["server", "--relay", "--upstream", upstream, "--region", region, "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefleet", *args, "--token", token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    log = log_path.open("a")
    url = None
    for line in proc.stderr:
        log.write(line)
        found = re.search(r"edgefleet relay on (\S+)", line)
        if found:
            url = found.group(1)
            break
    log.flush()
    if url is None:
        proc.wait(10)
        log.close()
        pytest.fail(f"the relay did not start (exit {proc.returncode}); see {log_path}")

    def drain() -> None:
        assert proc.stderr is not None
        for rest in proc.stderr:
            log.write(rest)
            log.flush()

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drainer.join(10)
        proc.stderr.close()
        log.close()


def test_a_relay_keeps_individual_updates_inside_its_region(tmp_path: Path) -> None:
    from edgefleet.federated import load_task

    task = load_task("digits")
    model = task.to_onnx(task.build_model(seed=0))
    fl_env = {**AGENT_ENV, "EDGEFLEET_FL_TASKS": "digits"}
    with ExitStack() as stack:
        server = stack.enter_context(
            ServerProcess.start(tmp_path / "server", env={"EDGEFLEET_FL_EVAL_S": "0.5"})
        )
        token = server.enroll_token(uses=3)
        relay = stack.enter_context(
            relay_process(tmp_path / "relay.log", server.url, "eu", server.token)
        )
        agents = {
            name: stack.enter_context(
                AgentProcess.start(
                    tmp_path / name,
                    server=url,
                    enroll_token=token,
                    labels={"region": name.split("-")[0]},
                    env={**fl_env, "EDGEFLEET_FL_PARTITION": f"{i}/3"},
                )
            )
            for i, (name, url) in enumerate(
                [("eu-1", relay), ("eu-2", relay), ("us-1", server.url)]
            )
        }
        ids = {name: device_id(agent) for name, agent in agents.items()}
        eu = {ids["eu-1"], ids["eu-2"]}

        def trains() -> bool:  # each agent has reported, through its relay or not, what it trains
            listed = {d["device_id"]: d for d in server.operator("GET", "/devices")}
            return all(
                "digits" in (listed.get(i, {}).get("inventory") or {}).get("fl_tasks", [])
                for i in ids.values()
            )

        wait_for("the agents to report their federated tasks", trains, timeout=30)
        with server.client() as client:
            pushed = client.post(
                "/models",
                data={"name": "digits", "version": "1"},
                files={"file": ("digits.onnx", model, "application/octet-stream")},
            )
        assert pushed.is_success, pushed.text
        job = server.operator(
            "POST",
            "/fl/jobs",
            json={
                "task": "digits",
                "model": "digits",
                "version": "1",
                "rounds": 2,
                "per_round": 3,
                "deadline": "40s",
            },
        )
        status: dict[str, Any] = {}

        def done() -> bool:
            status.update(server.operator("GET", f"/fl/jobs/{job['job_id']}"))
            return bool(status["state"] != "running")

        wait_for("the job to finish", done, timeout=120)

    assert status["state"] == "completed", status["reason"]
    assert len(status["rounds"]) == 2
    for row in status["rounds"]:
        assert row["state"] == "closed"
        parts = {d["device_id"]: d for d in row["devices"]}
        assert sorted(parts) == sorted([*ids.values(), "region:eu"]), parts
        for dev in eu:
            assert parts[dev]["state"] == "in_region"
            assert parts[dev]["bytes_up"] == 0
        assert parts["region:eu"]["state"] == "accepted"
        assert parts["region:eu"]["bytes_up"] > 0
        assert parts[ids["us-1"]]["state"] == "accepted"
        assert row["participants"] == 3
        assert row["regions"] == ["eu"]
    first = status["initial_metrics"]["accuracy"]
    last = status["rounds"][-1]["metrics"]["accuracy"]
    assert last > first, (first, last)

    # What the control plane stored: no payload of an eu device, one aggregate per round.
    with open_store(load_settings(tmp_path / "server").sqlalchemy_url) as store:
        stored = store.list_fl_updates(job["job_id"])
    assert all(p.payload_sha256 is None for p in stored if p.device_id in eu)
    assert [p.round for p in stored if p.device_id == "region:eu"] == [1, 2]
    assert "forwarded region eu's aggregate of 2 devices" in (tmp_path / "relay.log").read_text()
