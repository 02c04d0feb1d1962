"""The Ray backend: the same results as the local one, reports in order, clear device errors.

One real Ray instance on this machine (2 CPUs) serves the whole module; the last test shuts it
down and checks that nothing of it is left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from edgefleet.federated.simulation import (
    ClientJob,
    LocalBackend,
    SimulationConfig,
    client_seed,
    simulate,
)
from edgefleet.federated.task import Dataset, TrainConfig, get_params
from edgefleet.federated.tasks.digits import DigitsTask

ray = pytest.importorskip("ray", reason="the Ray backend needs Ray: pip install 'edgefleet[ray]'")
pytest.importorskip("torch", reason="simulated devices train with PyTorch (the train extra)")

from edgefleet.federated.ray_backend import CLOSED_PROXY, ClientJobError, RayBackend  # noqa: E402


@pytest.fixture(scope="module")
def backend() -> Iterator[RayBackend]:
    with RayBackend(num_cpus=2) as started:
        yield started


@pytest.fixture(scope="module")
def task() -> DigitsTask:
    return DigitsTask()


class ExplodingTask(DigitsTask):
    """The digits task, except that training with one seed raises, as a broken device would."""

    def __init__(self, fatal_seed: int) -> None:
        super().__init__()
        self.fatal_seed = fatal_seed

    def train(self, model: Any, data: Dataset, epochs: int, config: TrainConfig) -> int:
        if config.seed == self.fatal_seed:
            raise RuntimeError("the battery died mid-epoch")
        return super().train(model, data, epochs, config)


@pytest.mark.parametrize(
    "config",
    [
        SimulationConfig(
            clients=6,
            per_round=4,
            rounds=2,
            partition="dirichlet:0.5",
            compression="dgc:0.99",
            dropout=0.2,
            slow=0.2,
            seed=3,
        ),
        SimulationConfig(
            clients=5,
            per_round=3,
            rounds=2,
            strategy="fedprox:mu=0.01",
            compression="topk:0.9",
            downlink="delta",
            seed=1,
        ),
    ],
    ids=["dgc-failures", "fedprox-delta"],
)
def test_ray_gives_the_local_results_bit_for_bit(
    backend: RayBackend, task: DigitsTask, config: SimulationConfig
) -> None:
    local = simulate(task, config, backend=LocalBackend())
    remote = simulate(task, config, backend=backend)
    assert remote.model.tobytes() == local.model.tobytes()
    assert remote.rounds == local.rounds  # selection, failures, bytes, metrics: all equal
    assert [r.uplink_bytes for r in remote.rounds] == [r.uplink_bytes for r in local.rounds]


def _jobs(devices: list[int], round_: int = 1) -> list[ClientJob]:
    start = get_params(DigitsTask().build_model(seed=0))[0]
    return [
        ClientJob(
            device,
            round_,
            start.copy(),
            # shards of different sizes, so the tasks finish out of order
            np.arange(40 * device, 40 * device + 20 * (8 - device), dtype=np.int64),
            1,
            TrainConfig(seed=client_seed(0, round_, device)),
            "topk:0.9",
            b"",
        )
        for device in devices
    ]


def test_reports_come_back_in_job_order(backend: RayBackend, task: DigitsTask) -> None:
    data = task.load_data()
    jobs = _jobs([5, 1, 7, 0, 3])
    reports = backend.run(task, data, jobs)
    assert [r.device for r in reports] == [5, 1, 7, 0, 3]
    expected = LocalBackend().run(task, data, jobs)
    assert [r.payload for r in reports] == [r.payload for r in expected]
    assert [r.codec_state for r in reports] == [r.codec_state for r in expected]
    assert [r.num_examples for r in reports] == [r.num_examples for r in expected]


def test_a_device_that_raises_is_named_with_its_round(backend: RayBackend) -> None:
    config = SimulationConfig(clients=4, per_round=4, rounds=3, seed=0)
    exploding = ExplodingTask(fatal_seed=client_seed(0, 2, 3))
    with pytest.raises(ClientJobError) as caught:
        simulate(exploding, config, backend=backend)
    error = caught.value
    assert str(error) == "device 3 failed in round 2: RuntimeError: the battery died mid-epoch"
    assert (error.device, error.round) == (3, 2)
    assert "the battery died mid-epoch" in error.remote_traceback
    assert error.__cause__ is None
    assert not isinstance(error, ray.exceptions.RayError)


def test_ray_is_told_to_report_nothing_before_it_is_imported() -> None:
    """Whatever a Ray release does by default, the backend's import of Ray turns reporting off.

    A fresh interpreter, without the settings in its environment: Ray alone would report
    (``usage_stats_enabled()`` is true until ``ray.init`` of some releases turns it off, and a
    driver joining a cluster never does).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_USAGE_STATS")}
    probe = (
        "from edgefleet.federated.ray_backend import require_ray\n"
        "require_ray()\n"
        "from ray._common.usage import usage_lib\n"
        "import os\n"
        "print(usage_lib.usage_stats_enabled(), os.environ.get('RAY_USAGE_STATS_PROMPT_ENABLED'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "0"]


def _worker_usage_stats() -> tuple[str | None, bool]:
    import os

    from ray._common.usage import usage_lib

    return os.environ.get("RAY_USAGE_STATS_ENABLED"), usage_lib.usage_stats_enabled()


def test_the_ray_it_starts_reports_no_usage_statistics(backend: RayBackend) -> None:
    """Ray reports usage statistics unless told not to: the driver and its workers are told."""
    from ray._common.usage import usage_lib

    backend.start()
    assert not usage_lib.usage_stats_enabled()
    in_worker = ray.get(ray.remote(_worker_usage_stats).options(num_cpus=1).remote())
    assert in_worker == ("0", False)


def test_bad_settings_are_refused_before_ray_starts() -> None:
    with pytest.raises(ValueError, match="Ray address must be"):
        RayBackend(address="ray://no-port")
    with pytest.raises(ValueError, match="cpus_per_device"):
        RayBackend(cpus_per_device=0)
    with pytest.raises(ValueError, match="num_cpus"):
        RayBackend(num_cpus=0)


def test_the_cli_runs_on_ray_with_the_local_results(backend: RayBackend) -> None:
    from typer.testing import CliRunner

    from edgefleet.cli.main import app

    args = ["fl", "simulate", "--clients", "4", "--per-round", "2", "--rounds", "2"]
    args += ["--compression", "dgc:0.99", "--json"]
    runner = CliRunner()
    on_ray = runner.invoke(app, [*args, "--backend", "ray"])
    assert on_ray.exit_code == 0, on_ray.output
    local = runner.invoke(app, [*args, "--backend", "local"])
    assert local.exit_code == 0, local.output
    assert json.loads(on_ray.stdout) == json.loads(local.stdout)
    assert ray.is_initialized()  # the CLI used the Ray it found and left it running


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "spark"], "must be 'local' or 'ray', got 'spark'"),
        (["--ray-address", "auto"], "needs --backend ray"),
        (["--backend", "ray", "--ray-address", "head node"], "Ray address must be"),
    ],
)
def test_bad_backend_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from edgefleet.cli.main import app

    result = CliRunner().invoke(app, ["fl", "simulate", *args])
    assert result.exit_code == 2, result.output
    option = "--ray-address" if "Ray address" in message or "needs" in message else "--backend"
    assert f"Invalid value for '{option}'" in result.output
    assert message in result.output


def test_the_ray_it_starts_listens_on_loopback_only(backend: RayBackend) -> None:
    """Left to itself, Ray binds its control store to the machine's network address."""
    backend.start()
    host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
    assert ipaddress.ip_address(host).is_loopback
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {host}


def test_starting_ray_leaves_this_process_environment_as_it_was() -> None:
    """The closed proxy is for the processes Ray starts, not for the caller's own requests."""
    proxies = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
    assert all(os.environ.get(name) != CLOSED_PROXY for name in proxies)


def test_close_leaves_a_ray_it_did_not_start_running(backend: RayBackend) -> None:
    backend.start()
    guest = RayBackend()
    guest.start()
    guest.close()
    assert ray.is_initialized()


def test_close_shuts_down_the_ray_it_started(backend: RayBackend) -> None:
    """Last in the module: it stops the module's Ray (a later test would start it again)."""
    backend.start()
    host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
    backend.close()
    assert not ray.is_initialized()
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 2):
        pass  # the cluster's control service is gone with it
