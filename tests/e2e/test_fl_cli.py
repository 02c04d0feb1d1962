"""`edgefleet fl simulate` as a user runs it: the round table, JSON output, bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

CLI = [sys.executable, "-m", "edgefleet", "fl", "simulate"]
SRC = Path(__file__).resolve().parents[2] / "src"
SHORT = ["--clients", "6", "--per-round", "3", "--rounds", "3", "--seed", "0"]


def fl_simulate(*args: str) -> subprocess.CompletedProcess[str]:
    # this checkout's code, whatever the environment has installed
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_a_short_dense_run_prints_the_table_and_improves_accuracy() -> None:
    run = fl_simulate(*SHORT, "--partition", "iid", "--compression", "dense")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:2] == ["round", "participants"]
    )
    assert lines[header].split() == [
        "round",
        "participants",
        "dropouts",
        "late",
        "uplink_bytes",
        "downlink_bytes",
        "accuracy",
        "loss",
    ]
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert all(row[1] == "3" and row[2] == "0" for row in rows)
    assert all(int(row[4]) > 0 and int(row[5]) > 0 for row in rows)
    accuracy = [float(row[6].rstrip("%")) for row in rows]
    assert accuracy[-1] > accuracy[0] + 20, accuracy
    assert lines[-1].startswith("final accuracy")


def test_json_output_carries_every_round_and_a_summary() -> None:
    from typer.testing import CliRunner

    from edgefleet.cli.main import app

    args = ["--partition", "dirichlet:0.5", "--compression", "dgc:0.99", "--dropout", "0.3"]
    run = CliRunner().invoke(app, ["fl", "simulate", *SHORT, *args, "--json"])
    assert run.exit_code == 0, run.output
    document = json.loads(run.stdout)
    assert document["config"]["compression"] == "dgc:0.99"
    assert [r["round"] for r in document["rounds"]] == [1, 2, 3]
    for r in document["rounds"]:
        assert r["participants"] + r["dropouts"] + r["late"] == 3
        assert 0.0 <= r["metrics"]["accuracy"] <= 1.0
    summary = document["summary"]
    assert summary["parameters"] == 1898
    assert summary["uplink_bytes"] == sum(r["uplink_bytes"] for r in document["rounds"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition", "dirichlet:x"], "Invalid value for '--partition'"),
        (["--compression", "dgc:2"], "Invalid value for '--compression'"),
        (["--strategy", "fedsgd"], "unknown strategy 'fedsgd'"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--per-round", "20"], "20 is more than --clients 10"),
        (["--dropout", "1"], "must be a probability in [0, 1)"),
        (["--rounds", "0"], "Invalid value for '--rounds'"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from edgefleet.cli.main import app

    result = CliRunner().invoke(app, ["fl", "simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
