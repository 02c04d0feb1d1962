"""Stopping an agent ends its long poll on purpose, and says nothing alarming about it.

The stop closes the long poll's connection pool under the thread blocked in it (the thread is
then abandoned, not awaited). When that poll ends (the server answers or hangs up, say because
it stops too), the socket error the thread sees (``EBADF``, "Bad file descriptor") is the stop
itself, not an outage of the control plane, so it is neither raised nor logged.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.agent.daemon import Agent
from edgefleet.agent.uplink import Uplink
from edgefleet.errors import UplinkError
from tests.unit.agent.loopback import ENROLL_TOKEN, LoopbackControlPlane
from tests.unit.agent.test_daemon import settings, wait_for


@pytest.fixture
def silent_server() -> Iterator[tuple[str, threading.Event, list[socket.socket]]]:
    """A server that accepts connections and never answers (a long poll held until closed)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted, held
    listener.close()
    for conn in held:
        conn.close()


def test_an_interrupted_long_poll_returns_nothing_new(
    silent_server: tuple[str, threading.Event, list[socket.socket]],
) -> None:
    url, accepted, held = silent_server
    uplink = Uplink(url, credential="c" * 32, timeout_s=30)
    outcome: list[Any] = []

    def poll() -> None:
        try:
            outcome.append(uplink.desired_state(known_version=1, wait_s=30))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    assert accepted.wait(10)
    uplink.interrupt()
    for conn in held:  # the server hangs up, as one that stops does
        conn.close()
    thread.join(30)
    uplink.close()
    assert outcome == [None]


def test_a_failed_poll_that_was_not_interrupted_still_raises(
    silent_server: tuple[str, threading.Event, list[socket.socket]],
) -> None:
    url, _, _ = silent_server
    with (
        Uplink(url, credential="c" * 32, timeout_s=0.2) as uplink,
        pytest.raises(UplinkError, match="desired state: cannot reach"),
    ):
        uplink.desired_state(known_version=1, wait_s=0.1)  # times out: a real failure


def test_stopping_an_agent_during_a_long_poll_logs_no_bad_file_descriptor(
    data_dir: Path, control_plane: LoopbackControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgefleet")
    agent = Agent(
        settings(data_dir, control_plane.url, enroll_token=ENROLL_TOKEN, poll_wait_s=30.0),
        announce=lambda line: None,
    )
    agent.start()
    try:
        uplink = wait_for(lambda: agent._uplink)
        polling = threading.Event()
        real = uplink.desired_state

        def spy(**kwargs: Any) -> Any:
            if kwargs.get("known_version") is not None:  # a poll the server holds
                polling.set()
            return real(**kwargs)

        uplink.desired_state = spy
        assert polling.wait(20)
    finally:
        agent.stop()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Bad file descriptor" not in logged
    assert "EBADF" not in logged
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], logged
