"""The device path (the agent and `edgefleet serve`) imports none of the heavy packages.

A device installs the base package only: ONNX Runtime and numpy, never the onnx package, the
control plane's web and database stack, or training frameworks. A fresh interpreter imports the
entry modules, loads and runs a model, checks a release as the agent does, and reports every
module it ended up with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("onnx", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "torch", "ray")

DEVICE_PATH = """
import json, sys
from pathlib import Path

import numpy as np

import edgefleet.agent.daemon
import edgefleet.cli.main
import edgefleet.runtime.oip.serve
from edgefleet.agent.checks import file_opset
from edgefleet.agent.compat import max_supported_opset
from edgefleet.runtime import load
from edgefleet.runtime.oip.service import InferenceService
from edgefleet.runtime.oip.http import Request
from edgefleet.runtime.repository import ModelRepository

path = Path(sys.argv[1])
model = load(path)
model.predict({"input": np.zeros((1, 1, 8, 8), dtype=np.float32)})
assert file_opset(path) <= max_supported_opset()
repository = ModelRepository()
repository.add(model)
service = InferenceService(repository)
metrics = service(Request("GET", "/metrics", "", {}, b""))
assert metrics.status == 200, metrics.status
print(json.dumps(sorted(sys.modules)))
"""


def test_the_agent_and_serve_paths_import_no_heavy_package(digits_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DEVICE_PATH, str(digits_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert heavy == [], f"the device path imported {heavy}"


SERVE_PATH = """
import json, sys
from pathlib import Path

import numpy as np

import edgefleet.cli.main
import edgefleet.runtime.oip.serve
from edgefleet.runtime import load
from edgefleet.runtime.oip.service import InferenceService
from edgefleet.runtime.oip.http import Request
from edgefleet.runtime.repository import ModelRepository

model = load(Path(sys.argv[1]))
model.predict({"input": np.zeros((1, 1, 8, 8), dtype=np.float32)})
repository = ModelRepository()
repository.add(model)
assert InferenceService(repository)(Request("GET", "/metrics", "", {}, b"")).status == 200
serving = sorted(sys.modules)
import edgefleet.agent.daemon
print(json.dumps([serving, sorted(sys.modules)]))
"""

OPERATOR_ONLY = ("yaml", "edgefleet.cli.operator_client")
"""What only the operator commands need (rollout plans, the operator API client)."""


def test_serve_starts_without_the_operator_commands_dependencies(digits_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_PATH, str(digits_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    serving, agent = json.loads(done.stdout.splitlines()[-1])

    def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
        return sorted(m for m in modules if m in names or m.split(".")[0] in names)

    # `edgefleet serve` talks to no control plane: no HTTP client, no YAML, no Rich
    assert loaded(serving, (*OPERATOR_ONLY, "httpx", "rich", "pygments")) == []
    # the agent needs httpx (which brings what it brings), never the operator's modules
    assert loaded(agent, OPERATOR_ONLY) == []
