"""Fleet reliability, played with real processes and real files.

A control plane and agents run as subprocesses with their own data dirs; faults are real:
SIGKILL at random points of an update, tampered artifacts, an expired TUF timestamp, a server
that restarts or stays away for many telemetry windows, and a proxy that delays, resets and
truncates connections. Each test states what must hold afterwards.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.protocol.signing import SigningKey, sign_desired_state
from edgefleet.protocol.v1 import API_PREFIX, DesiredState
from edgefleet.testing.faulty_proxy import Faults, FaultyProxy
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData

from .fleet_helpers import (
    MODEL,
    active_of,
    active_version,
    deploy,
    device_id,
    devices,
    heartbeats_pass,
    infer,
    merged_count,
    push,
    serves,
    sha256_of,
    start_agent,
    state_of,
    wait_for,
)

pytestmark = pytest.mark.slow
KILL_CYCLES = 50
"""SIGKILLs of the agent in the crash test (each costs one agent start-up, ~1-2 s)."""


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


# 1. Crashes at random points of an update --------------------------------------------------


def check_models_dir(agent: AgentProcess, known: dict[str, str]) -> None:
    """The active file is a verified registry file; nothing under models/ fails its hash."""
    models = agent.data_dir / "models"
    for path in models.iterdir():
        if path.suffix == ".onnx":
            assert sha256_of(path) == path.stem, f"{path} does not hash to its name"
    active = state_of(agent)["active"]
    path = Path(active["path"])
    assert path.parent == models, f"active model {path} is not under models/"
    assert active["sha256"] == known[active["version"]]
    assert sha256_of(path) == known[active["version"]], "the active file fails its hash"


@pytest.mark.timeout(900)  # about 2 minutes on an idle 2-core machine; far longer under load
def test_sigkill_during_updates_always_restarts_on_a_verified_model(
    tmp_path: Path, stack: ExitStack, digits_path: Path, echo_path: Path
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    agent = start_agent(stack, tmp_path, "a", server.url, server.enroll_token())
    known = {
        "1": push(server, digits_path, "1")["sha256"],
        "2": push(server, echo_path, "2")["sha256"],
    }
    dev = device_id(agent)
    deploy(server, "1")
    wait_for("the first model", lambda: active_of(devices(server)[dev]) == f"{MODEL}@1")
    rng = random.Random(20261124)
    version = "1"
    for cycle in range(KILL_CYCLES):
        version = "2" if version == "1" else "1"
        deploy(server, version)
        time.sleep(rng.uniform(0.0, 0.3))  # kill at a random point of the update, on purpose
        agent.kill()
        agent.restart()
        assert serves(agent), f"cycle {cycle}: nothing served after the restart"
        check_models_dir(agent, known)
    wait_for(
        f"convergence on {MODEL}@{version}",
        lambda: state_of(agent)["active"]["version"] == version and serves(agent),
    )
    check_models_dir(agent, known)
    wait_for("the inventory", lambda: active_of(devices(server)[dev]) == f"{MODEL}@{version}")


# 2. Attacks reachable through real processes ------------------------------------------------


def failed_events(server: ServerProcess, dev: str) -> list[dict[str, Any]]:
    return [e for e in server.operator("GET", "/events", params={"device_id": dev}) if not e["ok"]]


def agent_running_version_1(
    stack: ExitStack, tmp_path: Path, server: ServerProcess, model: Path, url: str = ""
) -> tuple[AgentProcess, str, str]:
    """An agent (talking to ``url``, the server's by default) that activated ``model`` as 1.

    Returns the agent, its device id and the sha256 of version 1.
    """
    agent = start_agent(stack, tmp_path, "a", url or server.url, server.enroll_token())
    dev = device_id(agent)
    good = str(push(server, model, "1")["sha256"])
    deploy(server, "1")
    wait_for("the first model", lambda: active_of(devices(server)[dev]) == f"{MODEL}@1")
    return agent, dev, good


def test_tampered_artifact_is_refused_and_the_current_model_keeps_serving(
    tmp_path: Path, stack: ExitStack, digits_path: Path, echo_path: Path, digits: DigitsData
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    agent, dev, good = agent_running_version_1(stack, tmp_path, server, digits_path)
    bad = push(server, echo_path, "2")["sha256"]
    artifact = tmp_path / "server" / "artifacts" / "sha256" / bad
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, one flipped byte: only the hash can tell
    artifact.write_bytes(bytes(data))

    deploy(server, "2")

    wait_for("a refusal reported to the server", lambda: bool(failed_events(server, dev)))
    refusal = failed_events(server, dev)[0]
    assert refusal["version"] == "2", refusal
    assert state_of(agent)["active"]["sha256"] == good
    assert not (agent.data_dir / "models" / f"{bad}.onnx").exists()
    infer(agent, digits, 5)
    assert active_of(devices(server)[dev]) == f"{MODEL}@1"


class ForgingProxy:
    """An HTTP proxy in front of the server that can answer desired-state polls with a forgery.

    Everything else is forwarded as is. A forged state asks for ``model`` under a higher version
    than the server's, either unsigned or signed with a key the device does not trust.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.forge: str | None = None  # None, "unsigned" or "foreign-key"
        self.model: dict[str, Any] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                skip = {"host", "content-length", "connection"}
                forging = proxy.forge and self.path.startswith(f"{API_PREFIX}/desired-state")
                if forging:
                    skip.add("if-none-match")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                with httpx.Client(timeout=60) as client:
                    answer = client.request(
                        self.command, proxy.upstream + self.path, headers=headers, content=body
                    )
                content, extra = answer.content, {}
                if forging and answer.status_code == 200:
                    content, etag = proxy.forged(answer.json())
                    extra = {"ETag": etag}
                self.send_response(answer.status_code)
                for name in ("content-type", "etag", "content-range", "accept-ranges"):
                    if name in answer.headers and name not in {k.lower() for k in extra}:
                        self.send_header(name, answer.headers[name])
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forged(self, real: dict[str, Any]) -> tuple[bytes, str]:
        state = {**real["signed"], "version": real["signed"]["version"] + 100}
        state["model"] = self.model
        signatures: list[dict[str, Any]] = []
        if self.forge == "foreign-key":
            signed = sign_desired_state(DesiredState.model_validate(state), SigningKey.generate())
            signatures = signed.model_dump(mode="json")["signatures"]
        body = json.dumps({"signed": state, "signatures": signatures}).encode()
        return body, f'"{state["version"]}"'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_unsigned_or_foreign_signed_desired_states_are_refused_and_reported(
    tmp_path: Path, stack: ExitStack, digits_path: Path, echo_path: Path, digits: DigitsData
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    proxy = ForgingProxy(server.url)
    stack.callback(proxy.close)
    agent, dev, good = agent_running_version_1(stack, tmp_path, server, digits_path, proxy.url)
    push(server, echo_path, "2")  # published, never deployed: what the forger asks for
    [release] = [
        r for r in server.operator("GET", f"/models/{MODEL}")["releases"] if r["version"] == "2"
    ]
    proxy.model = {k: release[k] for k in ("name", "version", "target", "release", "sha256")}
    proxy.model["length"] = release["length"]

    for forgery in ("unsigned", "foreign-key"):
        before = len(failed_events(server, dev))
        proxy.forge = forgery
        wait_for(
            f"the {forgery} desired state to be refused and reported",
            lambda before=before: len(failed_events(server, dev)) > before,  # type: ignore[misc]
        )
        refusal = failed_events(server, dev)[0]
        assert refusal["kind"] == "verification_failed", refusal
        assert "desired state" in refusal["detail"], refusal
    proxy.forge = None
    assert state_of(agent)["active"]["sha256"] == good
    assert not (agent.data_dir / "models" / f"{release['sha256']}.onnx").exists()
    infer(agent, digits, 5)
    assert active_of(devices(server)[dev]) == f"{MODEL}@1"


def test_expired_timestamp_is_refused_and_the_current_model_keeps_serving(
    tmp_path: Path, stack: ExitStack, digits_path: Path, echo_path: Path, digits: DigitsData
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    agent, dev, good = agent_running_version_1(stack, tmp_path, server, digits_path)
    agent.stop()
    # From now on the server signs timestamps that live 2 s and never re-signs them in time.
    server.env = {"EDGEFLEET_TIMESTAMP_EXPIRY_S": "2", "EDGEFLEET_RESIGN_INTERVAL_S": "3600"}
    server.restart()
    push(server, echo_path, "2")
    deploy(server, "2")
    time.sleep(3.0)  # real time must pass: the new timestamp expires 2 s after it was signed

    agent.restart()

    wait_for("a refusal reported to the server", lambda: bool(failed_events(server, dev)))
    details = " ".join(e["detail"] for e in failed_events(server, dev))
    assert "expir" in details.lower(), details
    assert state_of(agent)["active"]["sha256"] == good
    infer(agent, digits, 5)


# 3. and 4. Telemetry across server restarts and outages -------------------------------------


def test_agents_reconnect_after_a_server_restart_and_no_window_is_lost_or_doubled(
    tmp_path: Path, stack: ExitStack, digits_path: Path, digits: DigitsData
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    token = server.enroll_token()
    agents = [start_agent(stack, tmp_path, name, server.url, token) for name in ("a", "b")]
    ids = [device_id(a) for a in agents]
    push(server, digits_path, "1")
    deploy(server, "1")
    wait_for(
        "every agent to activate",
        lambda: all(active_of(devices(server)[d]) == f"{MODEL}@1" for d in ids),
    )
    sent = dict.fromkeys(ids, 0)
    for agent, dev, n in zip(agents, ids, (37, 23), strict=True):
        infer(agent, digits, n)
        sent[dev] += n
    seen_before = {d: devices(server)[d]["last_seen_at"] for d in ids}

    server.restart()
    for agent, dev, n in zip(agents, ids, (11, 19), strict=True):
        infer(agent, digits, n)
        sent[dev] += n

    wait_for(
        "heartbeats after the restart",
        lambda: all(devices(server)[d]["last_seen_at"] > seen_before[d] for d in ids),
    )
    wait_for(
        "every inference in the merged telemetry",
        lambda: all(merged_count(server, d) == sent[d] for d in ids),
    )
    heartbeats_pass(server, ids)  # several more windows and uploads: nothing may arrive twice
    assert {d: merged_count(server, d) for d in ids} == sent


def windows_spooled(agent: AgentProcess) -> int:
    """How many telemetry windows the agent has ever written to its spool (evicted included).

    The spool's row ids are AUTOINCREMENT, so SQLite's sequence only grows.
    """
    uri = f"file:{agent.data_dir / 'spool.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'windows'").fetchone()
    return int(row[0]) if row else 0


SMALL_SPOOL = 2500
"""A spool budget of a few telemetry windows (one window is roughly 0.6 kB of JSON)."""


def test_the_spool_carries_windows_across_an_outage_and_counts_what_its_budget_drops(
    tmp_path: Path, stack: ExitStack, digits_path: Path, digits: DigitsData
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    token = server.enroll_token()
    roomy = start_agent(stack, tmp_path, "roomy", server.url, token)
    tiny = start_agent(
        stack,
        tmp_path,
        "tiny",
        server.url,
        token,
        env={"EDGEFLEET_SPOOL_BUDGET_BYTES": str(SMALL_SPOOL)},
    )
    ids = [device_id(roomy), device_id(tiny)]
    push(server, digits_path, "1")
    deploy(server, "1")
    wait_for(
        "every agent to activate",
        lambda: all(active_of(devices(server)[d]) == f"{MODEL}@1" for d in ids),
    )
    port = int(server.url.rsplit(":", 1)[1])
    assert server.operator("GET", "/telemetry")["dropped_windows"] == 0

    server.stop()
    sent = 0
    for _ in range(6):  # six bursts, each in a telemetry window of its own, pile up in the spools
        infer(roomy, digits, 10)
        infer(tiny, digits, 10)
        sent += 10
        spooled = [(agent, windows_spooled(agent)) for agent in (roomy, tiny)]
        wait_for(
            "the burst's windows to close into the spools",
            lambda: all(windows_spooled(a) > n for a, n in spooled),  # noqa: B023
        )
    restarted = stack.enter_context(ServerProcess.start(tmp_path / "server", port=port))

    wait_for("the roomy spool's windows", lambda: merged_count(restarted, ids[0]) == sent)
    # The drop counter travels with telemetry batches: a window after the outage carries it,
    # even where the budget evicted every window spooled during the outage.
    infer(tiny, digits, 5)
    wait_for(
        "the tiny spool's drops on the server",
        lambda: restarted.operator("GET", "/telemetry")["dropped_windows"] > 0,
    )
    heartbeats_pass(restarted, ids)  # more uploads: nothing may arrive twice
    assert merged_count(restarted, ids[0]) == sent
    assert merged_count(restarted, ids[1]) < sent
    assert devices(restarted)[ids[0]]["telemetry_dropped"] == 0
    assert devices(restarted)[ids[1]]["telemetry_dropped"] > 0
    drops = [e for e in failed_events(restarted, ids[1]) if e["kind"] == "telemetry_dropped"]
    assert drops, "the tiny spool's drops are not reported as events"


# 5. A faulty network ------------------------------------------------------------------------


def test_every_agent_converges_through_a_proxy_that_delays_resets_and_truncates(
    tmp_path: Path, stack: ExitStack, digits_path: Path, echo_path: Path
) -> None:
    server = stack.enter_context(ServerProcess.start(tmp_path / "server"))
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    faults = Faults(delay=0.2, reset=0.15, truncate=0.15, delay_s=0.05)
    proxy = stack.enter_context(FaultyProxy(host, int(port), seed=5, faults=faults))
    token = server.enroll_token()
    agents = [start_agent(stack, tmp_path, name, proxy.url, token) for name in ("a", "b", "c")]
    ids = [device_id(a) for a in agents]
    push(server, digits_path, "1")
    push(server, echo_path, "2")
    deploy(server, "1")
    deploy(server, "2")

    wait_for("every agent to serve m@2", lambda: all(active_version(a) == "2" for a in agents))
    wait_for(
        "every inventory to say so",
        lambda: all(active_of(devices(server)[d]) == f"{MODEL}@2" for d in ids),
        timeout=60,
    )
    assert all(serves(a) for a in agents)
    assert proxy.fates["reset"] > 0
    assert proxy.fates["truncate"] > 0
