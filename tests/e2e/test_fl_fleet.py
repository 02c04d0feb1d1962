"""Federated jobs through real agents: devices train on their own shards, only updates travel.

Each test runs a server and agents as subprocesses on loopback. The task is the digits task
(:mod:`tests.e2e.fl_tasks` lets a test stall one device's training so it can kill it mid-round).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from edgefleet.federated import DGCCodec, codec_from_spec, load_task
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from tests.e2e.fleet_helpers import AGENT_ENV, device_id, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

TASK = "tests.e2e.fl_tasks:StallableDigits"
ROOT = str(Path(__file__).resolve().parents[2])
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
SERVER_ENV = {**ENV, "EDGEFLEET_FL_EVAL_S": "0.3"}


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``edgefleet ARGS`` against ``server`` with its operator token."""
    env = {**os.environ, "EDGEFLEET_SERVER": server.url, "EDGEFLEET_TOKEN": server.token}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def start_model(tmp_path: Path) -> Path:
    """An untrained digits CNN (about 10% accurate): the job has everything to gain."""
    task = load_task("digits")
    path = tmp_path / "digits-untrained.onnx"
    path.write_bytes(task.to_onnx(task.build_model(seed=0)))
    return path


def push(server: ServerProcess, path: Path) -> None:
    with server.client() as client, path.open("rb") as f:
        response = client.post(
            "/models",
            data={"name": "digits", "version": "1"},
            files={"file": (path.name, f, "application/octet-stream")},
        )
    assert response.is_success, response.text


def agent(
    stack: ExitStack, root: Path, server: str, token: str, i: int, n: int, **env: str
) -> AgentProcess:
    return stack.enter_context(
        AgentProcess.start(
            root / f"a{i}",
            server=server,
            enroll_token=token,
            labels={"agent": f"a{i}"},
            env={
                **AGENT_ENV,
                **ENV,
                "EDGEFLEET_FL_TASKS": TASK,
                "EDGEFLEET_FL_PARTITION": f"{i}/{n}",
                **env,
            },
        )
    )


def job_status(server: ServerProcess, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = server.operator("GET", f"/fl/jobs/{job_id}")
    return result


def round_of(status: dict[str, Any], number: int) -> dict[str, Any] | None:
    return next((r for r in status["rounds"] if r["round"] == number), None)


def part_of(round_: dict[str, Any], device: str) -> dict[str, Any]:
    return next(d for d in round_["devices"] if d["device_id"] == device)


def fetched(server: ServerProcess, job_id: str, number: int, device: str) -> bool:
    """Whether ``device`` downloaded round ``number``'s model."""
    found = round_of(job_status(server, job_id), number)
    parts = [] if found is None else [d for d in found["devices"] if d["device_id"] == device]
    return bool(parts) and parts[0]["bytes_down"] > 0


def start_job(server: ServerProcess, **settings: Any) -> str:
    body = {"task": TASK, "model": "digits", "version": "1", **settings}
    result: dict[str, Any] = server.operator("POST", "/fl/jobs", json=body)
    return str(result["job_id"])


def test_a_job_outlives_a_killed_agent_and_a_server_restart(
    stack: ExitStack, tmp_path: Path
) -> None:
    """4 agents, 4 rounds: one is killed mid-round 2 (the round closes at its deadline
    without it) and returns for round 3 with the residual it kept on disk; the server
    restarts during round 3. The job still finishes every round once, improves held-out
    accuracy and registers its model. A fifth agent, which does not train the job's task,
    is never selected."""
    server = stack.enter_context(ServerProcess.start(tmp_path / "server", env=SERVER_ENV))
    token = server.enroll_token(uses=5)
    flag = tmp_path / "stall"
    agents = [
        agent(stack, tmp_path, server.url, token, i, 4, EDGEFLEET_TEST_STALL_FLAG=str(flag))
        if i == 3
        else agent(stack, tmp_path, server.url, token, i, 4)
        for i in range(4)
    ]
    other = agent(stack, tmp_path, server.url, token, 4, 5, EDGEFLEET_FL_TASKS="digits")
    ids = [device_id(a) for a in agents]
    push(server, start_model(tmp_path))
    flag.touch()  # a3 stalls in its second round's training...
    job = start_job(
        server, rounds=4, per_round=4, compression="dgc:0.99", deadline="40s", local_epochs=2
    )

    wait_for("a3 fetched round 2's model", lambda: fetched(server, job, 2, ids[3]), 120)
    agents[3].kill()  # ...and dies mid-round
    flag.unlink()
    wait_for("round 2 closed", lambda: (round_of(job_status(server, job), 3) or {}) != {}, 60)
    agents[3].restart()
    second = round_of(job_status(server, job), 2)
    assert second is not None
    assert second["state"] == "closed"
    assert second["closed_by"].startswith("deadline")
    assert (second["participants"], second["selected"], second["dropouts"]) == (3, 4, 1)
    assert part_of(second, ids[3])["state"] == "missed"

    wait_for("round 3 open", lambda: job_status(server, job)["round"] >= 3, 60)
    server.restart()
    wait_for("the job done", lambda: job_status(server, job)["state"] != "running", 180)

    status = job_status(server, job)
    assert status["state"] == "completed", status["reason"]
    assert [r["round"] for r in status["rounds"]] == [1, 2, 3, 4]
    assert all(r["state"] == "closed" for r in status["rounds"]), [
        (r["state"], r["closed_by"], [(d["state"], d["reason"]) for d in r["devices"]])
        for r in status["rounds"]
    ]
    fourth = status["rounds"][3]
    assert part_of(fourth, ids[3])["state"] == "accepted"  # the killed device rejoined
    before = status["initial_metrics"]["accuracy"]
    after = fourth["metrics"]["accuracy"]
    assert after > before + 0.3, (before, after)
    version = status["result_version"]
    assert version == "2"
    models = server.operator("GET", "/models/digits")
    registered = {v["version"]: v for v in models["versions"]}
    assert registered["2"]["calibration"] is not None
    for r in status["rounds"]:  # compressed updates: far less up than down
        assert r["bytes_up"] * 3 < r["bytes_down"], r
        assert device_id(other) not in {d["device_id"] for d in r["devices"]}
    # a3's codec state: rounds 1, 3 and 4 (round 2's update never left it). Had the restart
    # lost the residual of round 1, the counter would say 2.
    codec = codec_from_spec("dgc:0.99")
    assert isinstance(codec, DGCCodec)
    codec.load_state((agents[3].data_dir / "fl" / job / "codec.state").read_bytes())
    assert codec.round == 3

    shown = cli(server, "fl", "status", job)
    assert shown.returncode == 0, shown.stderr
    assert f"{job}  {TASK} from digits@1  COMPLETED  round 4/4" in shown.stdout
    second_row = next(line for line in shown.stdout.splitlines() if line.startswith("2 "))
    assert second_row.split()[:4] == ["2", "closed", "3/4", "1"]
    assert "registered digits@2" in shown.stdout
    listed = cli(server, "fl", "list")
    assert job in listed.stdout
    assert "completed" in listed.stdout
    late = cli(server, "fl", "cancel", job)
    assert late.returncode != 0
    assert f"federated job {job} is completed, not running" in late.stderr


def test_bad_job_settings_are_refused_from_the_command_line(
    stack: ExitStack, tmp_path: Path
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server", env=SERVER_ENV))
    push(server, start_model(tmp_path))
    start = ("fl", "start", "--task", TASK)
    unversioned = cli(server, *start, "--model", "digits")
    assert unversioned.returncode != 0
    assert "--model 'digits' must be NAME@VERSION" in unversioned.stderr
    missing = cli(server, *start, "--model", "digits@9")
    assert missing.returncode != 0
    assert "no model version digits@9" in missing.stderr
    bad_codec = cli(server, *start, "--model", "digits@1", "--compression", "dgc:2")
    assert bad_codec.returncode != 0
    assert "compression: codec spec 'dgc:2'" in bad_codec.stderr
    bad_deadline = cli(server, *start, "--model", "digits@1", "--deadline", "soon")
    assert bad_deadline.returncode != 0
    assert "'soon'" in bad_deadline.stderr
    # a good job with no device to train it waits, and is shown waiting
    started = cli(server, *start, "--model", "digits@1", "--rounds", "2", "--per-round", "3")
    assert started.returncode == 0, started.stderr
    job = started.stdout.split()[1].rstrip(":")
    wait_for("the job to wait for devices", lambda: bool(job_status(server, job)["reason"]))
    waiting = cli(server, "fl", "status", job)
    assert "RUNNING  round 0/2" in waiting.stdout
    assert "waiting for devices" in waiting.stdout
    cancelled = cli(server, "fl", "cancel", job)
    assert cancelled.stdout.strip() == f"{job}: cancelled"
