"""``edgefleet server`` and ``edgefleet server --relay`` stop cleanly on SIGTERM while devices
hold long polls open.

A held desired-state poll is answered at once (304, nothing changed) when the server or relay
begins to stop, so neither waits out the polls nor cancels them (which printed
``CancelledError`` tracebacks and took up to the graceful timeout).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.server.init import initialize
from edgefleet.testing.fleet import subprocess_env

DEADLINE_S = 30.0
"""Generous for a loaded machine; nothing is asserted about seconds within it."""
POLLS = 3


def _start(args: list[str], log: Path, announced: str) -> tuple[subprocess.Popen[bytes], str]:
    """``edgefleet ARGS`` in a subprocess; its URL once it announces ``<announced> on URL``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgefleet", *args, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=subprocess_env({"EDGEFLEET_LONG_POLL_MAX_S": "120"}),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(rf"{announced} on (\S+)", log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)  # polling the log with a deadline
    proc.kill()
    raise AssertionError(f"{announced} did not start: {log.read_text(errors='replace')}")


def _start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    return _start(["server", "--data-dir", str(data_dir)], log, "edgefleet server")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM ``proc`` and wait for it (killed if it outlives the deadline)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _enrol(url: str, operator_token: str) -> str:
    headers = {"Authorization": f"Bearer {operator_token}"}
    with httpx.Client(base_url=url, timeout=30) as c:
        token = c.post("/api/operator/v1/enroll-tokens", json={}, headers=headers).json()["token"]
        enrolled = c.post(f"{API_PREFIX}/enroll", json={"token": token})
    assert enrolled.status_code == 200, enrolled.text
    credential: str = enrolled.json()["credential"]
    return credential


def _hold_poll(url: str, credential: str, version: str, answers: list[int | str]) -> None:
    """A device's long poll of up to 120 s; records the status or the transport error."""
    try:
        with httpx.Client(base_url=url, timeout=DEADLINE_S + 150) as c:
            response = c.get(
                f"{API_PREFIX}/desired-state",
                params={"wait": "120"},
                headers={"Authorization": f"Bearer {credential}", "If-None-Match": version},
            )
        answers.append(response.status_code)
    except httpx.HTTPError as exc:
        answers.append(type(exc).__name__)


def _wait_until_polls_are_held(url: str, held: int) -> None:
    """Wait until the server has ``held`` connections besides ours (the polls)."""
    port = urlsplit(url).port
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        ss = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            check=False,
        )
        if len(ss.stdout.splitlines()) >= held:
            return
        time.sleep(0.05)  # polling the socket table with a deadline
    raise AssertionError(f"{held} polls were not held by the server")


def test_sigterm_with_long_polls_held_exits_cleanly_and_answers_the_polls(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "server", tmp_path / "server.log"
    operator_token = initialize(data_dir).operator_token
    proc, url = _start_server(data_dir, log)
    try:
        credentials = [_enrol(url, operator_token) for _ in range(POLLS)]
        versions = []
        for credential in credentials:
            with httpx.Client(base_url=url, timeout=30) as c:
                first = c.get(
                    f"{API_PREFIX}/desired-state",
                    headers={"Authorization": f"Bearer {credential}"},
                )
            versions.append(first.headers["ETag"])
        answers: list[int | str] = []
        polls = [
            threading.Thread(target=_hold_poll, args=(url, cred, version, answers))
            for cred, version in zip(credentials, versions, strict=True)
        ]
        for poll in polls:
            poll.start()
        _wait_until_polls_are_held(url, POLLS)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(DEADLINE_S)
        for poll in polls:
            poll.join(DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert code in (0, -signal.SIGTERM), output  # uvicorn ends by re-raising the signal
    assert "Traceback" not in output
    assert "CancelledError" not in output
    assert answers == [304] * POLLS, answers


def test_a_relay_answers_the_polls_it_forwards_on_sigterm_and_exits_cleanly(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "server"
    operator_token = initialize(data_dir).operator_token
    upstream, url = _start_server(data_dir, tmp_path / "server.log")
    log = tmp_path / "relay.log"
    try:
        relay, relay_url = _start(
            ["server", "--relay", "--upstream", url, "--region", "eu", "--token", operator_token],
            log,
            "edgefleet relay",
        )
        try:
            credential = _enrol(url, operator_token)
            with httpx.Client(base_url=relay_url, timeout=30) as c:
                first = c.get(
                    f"{API_PREFIX}/desired-state",
                    headers={"Authorization": f"Bearer {credential}"},
                )
            assert first.status_code == 200, first.text
            answers: list[int | str] = []
            poll = threading.Thread(
                target=_hold_poll, args=(relay_url, credential, first.headers["ETag"], answers)
            )
            poll.start()
            _wait_until_polls_are_held(relay_url, 1)
            code = _stop(relay)
            poll.join(DEADLINE_S)
        finally:
            if relay.poll() is None:
                relay.kill()
                relay.wait()
    finally:
        _stop(upstream)
    output = log.read_text(errors="replace")
    assert code in (0, -signal.SIGTERM), output  # uvicorn ends by re-raising the signal
    assert "Traceback" not in output
    assert "CancelledError" not in output
    assert answers == [304], answers
