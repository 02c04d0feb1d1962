"""A fleet's lifecycle with real agents: `deploy --wait`, decommissioning, the audit trail.

A real `edgefleet server` subprocess, real agents enrolled with it, and the operator CLI in
subprocesses, as an operator runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from edgefleet.cli.exit_codes import EXIT_TIMED_OUT
from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.testing.fleet import ServerProcess

from .fleet_helpers import MODEL, device_id, push, start_agent, wait_for


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEFLEET_SERVER": server.url, "EDGEFLEET_TOKEN": server.token}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_deploy_wait_reports_progress_then_names_the_stragglers_on_timeout(
    tmp_path: Path, digits_path: Path, echo_path: Path
) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
        token = server.enroll_token(uses=2)
        agents = [start_agent(stack, tmp_path, f"a{i}", server.url, token) for i in range(2)]
        ids = [device_id(agent) for agent in agents]
        push(server, digits_path, "1")
        push(server, echo_path, "2")

        done = cli(server, "deploy", f"{MODEL}@1", "--to", "", "--wait", "--timeout", "240")
        assert done.returncode == 0, done.stderr
        assert f"2/2 devices serve {MODEL}@1" in done.stdout
        assert f"every targeted device serves {MODEL}@1" in done.stdout

        agents[1].stop()
        late = cli(server, "deploy", f"{MODEL}@2", "--to", "", "--wait", "--timeout", "5")
        assert late.returncode == EXIT_TIMED_OUT, late.stdout
        assert late.stderr.startswith("error: after 5 s")
        assert f"{ids[1]} ({MODEL}@1, " in late.stderr  # the stopped agent still runs @1

        history = json.loads(cli(server, "deployment", "list", "--json").stdout)
        assert [d["version"] for d in history["deployments"]] == ["2", "1"]


@pytest.mark.slow
def test_a_decommissioned_agent_is_refused_and_its_history_stays(
    tmp_path: Path, digits_path: Path
) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
        agent = start_agent(stack, tmp_path, "a", server.url, server.enroll_token())
        dev = device_id(agent)
        push(server, digits_path, "1")
        done = cli(server, "deploy", f"{MODEL}@1", "--to", "", "--wait", "--timeout", "240")
        assert done.returncode == 0, done.stderr

        gone = cli(server, "device", "decommission", dev)
        assert gone.returncode == 0, gone.stderr
        wait_for(
            "the agent to be refused",
            lambda: "refused this device's credential" in agent.log_path.read_text(),
        )
        credential = json.loads((agent.data_dir / "credential.json").read_text())["credential"]
        with httpx.Client(base_url=server.url + API_PREFIX) as client:
            answer = client.get("/desired-state", headers={"Authorization": f"Bearer {credential}"})
        assert answer.status_code == 401

        shown = cli(server, "device", "show", dev)
        assert shown.returncode == 0, shown.stderr
        assert "decommissioned at 20" in shown.stdout
        assert "labels: agent=a" in shown.stdout
        assert " activated " in shown.stdout or " verified " in shown.stdout  # history stays
        listed = json.loads(cli(server, "device", "list", "--json").stdout)
        assert dev not in [d["device_id"] for d in listed]
        trail = cli(server, "audit", "--action", "devices")
        assert f"devices.decommission  {dev}" in trail.stdout
        logged = [ln for ln in server.log_path.read_text().splitlines() if "edgefleet.audit" in ln]
        assert any(
            f"actor=init action=devices.decommission target={dev} outcome=ok" in ln for ln in logged
        ), logged


def test_the_server_logs_each_audited_action_as_one_json_line(tmp_path: Path) -> None:
    with ServerProcess.start(tmp_path / "server", extra=("--log-format", "json")) as server:
        refused = cli(server, "deploy", "nope@1", "--to", "region=eu")
        assert refused.returncode == 9, refused.stderr  # not in the registry

        def audit_lines() -> list[dict[str, object]]:
            lines = server.log_path.read_text().splitlines()
            parsed = [json.loads(line) for line in lines if line.startswith("{")]
            return [line for line in parsed if line.get("logger") == "edgefleet.audit"]

        wait_for("the audit line", lambda: bool(audit_lines()))
        [line] = audit_lines()
    assert line["actor"] == "init"
    assert line["action"] == "deployments.create"
    assert line["target"] == "nope@1 to region=eu"
    assert str(line["outcome"]).startswith("refused 404")
    assert line["level"] == "info"


def test_an_unknown_log_format_is_a_usage_error(tmp_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "server",
            "--data-dir",
            str(tmp_path),
            "--log-format",
            "xml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert "--log-format 'xml'" in bad.stderr
