"""The operator CLI against a real `edgefleet server` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.fleet import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(tmp_path_factory.mktemp("fleet") / "server") as running:
        yield running


def cli(
    server: ServerProcess, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EDGEFLEET_SERVER": server.url,
        "EDGEFLEET_TOKEN": server.token if token is None else token,
    }
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_push_list_enrol_deploy_and_show_from_the_command_line(
    server: ServerProcess, digits_path: Path
) -> None:
    pushed = cli(server, "model", "push", str(digits_path), "--name", "digits", "--golden", "2")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed digits@1" in pushed.stdout
    listed = cli(server, "model", "list", "--json")
    assert [(m["name"], m["version"]) for m in json.loads(listed.stdout)] == [("digits", "1")]
    shown = json.loads(cli(server, "model", "show", "digits").stdout)
    assert shown["releases"][0]["release"] == 1
    token = cli(server, "enroll-token", "create", "--labels", "region=eu").stdout.strip()
    assert token.startswith("efe_")
    empty = cli(server, "deploy", "digits@1", "--to", "region=eu")
    assert empty.returncode == 10  # no device is enrolled yet: refused, nothing spent
    assert "matches no device" in empty.stderr
    deployed = cli(server, "deploy", "digits@1", "--to", "region=eu", "--allow-empty")
    assert deployed.returncode == 0, deployed.stderr
    assert "release 1" in deployed.stdout
    assert cli(server, "device", "list").returncode == 0


def test_cli_errors_are_one_line_with_a_documented_exit_code(
    server: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    refused = cli(server, "model", "push", str(bad), "--name", "x")
    assert refused.returncode == 3
    assert refused.stderr.startswith("error: ")
    assert "model" in refused.stderr
    assert cli(server, "deploy", "digits", "--to", "").returncode == 2
    assert cli(server, "device", "list", token="efo_wrong").returncode == 6
    assert cli(server, "device", "show", "dev-nope").returncode == 9  # not found (docs/cli.md)
    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "device",
            "list",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "efo_x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 7
    assert "cannot reach" in unreachable.stderr
