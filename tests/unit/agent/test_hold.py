"""The update hold and its local endpoint, over a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.agent.hold import HOLD_PATH, UpdateHold, hold_route
from edgefleet.agent.reporter import EventLog
from edgefleet.agent.spool import Spool
from edgefleet.runtime import ModelRepository
from edgefleet.runtime.oip import make_server


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool.db", budget_bytes=2**20)
    yield spool
    spool.close()


def kinds(spool: Spool) -> list[str]:
    return [e.kind for e in spool.pending(max_events=100).events]


def test_the_hold_survives_a_restart(tmp_path: Path, spool: Spool) -> None:
    clock = Clock(1000.0)
    hold = UpdateHold(tmp_path / "hold.json", EventLog(spool), clock=clock)
    hold.take("firmware flash")
    again = UpdateHold(tmp_path / "hold.json", clock=clock)
    assert again.held_since == 1000.0
    assert again.reason == "firmware flash"
    again.release()
    assert not (tmp_path / "hold.json").exists()
    assert UpdateHold(tmp_path / "hold.json").held_since is None


def test_taking_twice_keeps_the_time_and_reports_once(tmp_path: Path, spool: Spool) -> None:
    clock = Clock(1000.0)
    released = threading.Event()
    hold = UpdateHold(tmp_path / "hold.json", EventLog(spool), clock=clock, on_release=released.set)
    hold.take("a")
    clock.now = 1010.0
    status = hold.take("b")
    assert status == {"held": True, "since": 1000.0, "reason": "b", "overdue": False}
    hold.release()
    hold.release()  # not held: nothing happens
    assert released.is_set()
    assert kinds(spool) == ["held", "hold_released"]


def test_an_overdue_hold_is_reported_once_and_still_honoured(tmp_path: Path, spool: Spool) -> None:
    clock = Clock(0.0)
    hold = UpdateHold(tmp_path / "hold.json", EventLog(spool), max_s=60, clock=clock)
    hold.take()
    assert not hold.check_overdue()
    clock.now = 61.0
    assert hold.check_overdue()
    assert not hold.check_overdue()
    restarted = UpdateHold(tmp_path / "hold.json", EventLog(spool), max_s=60, clock=clock)
    assert not restarted.check_overdue()  # remembered across a restart
    assert restarted.status()["overdue"]
    assert restarted.held_since == 0.0
    assert kinds(spool) == ["held", "hold_overdue"]


def test_an_unreadable_hold_file_still_holds(tmp_path: Path) -> None:
    (tmp_path / "hold.json").write_text("{not json")
    hold = UpdateHold(tmp_path / "hold.json")
    assert hold.held_since is not None
    assert "unreadable" in hold.reason


@pytest.fixture
def endpoint(tmp_path: Path, spool: Spool) -> Iterator[tuple[str, UpdateHold]]:
    hold = UpdateHold(tmp_path / "hold.json", EventLog(spool))
    server, _ = make_server(ModelRepository(), "127.0.0.1", 0, routes={HOLD_PATH: hold_route(hold)})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url + HOLD_PATH, hold
    server.shutdown(1)
    thread.join(5)


def test_the_endpoint_takes_shows_and_releases_the_hold(
    endpoint: tuple[str, UpdateHold],
) -> None:
    url, hold = endpoint
    assert httpx.get(url).json() == {"held": False, "since": None, "reason": "", "overdue": False}
    taken = httpx.post(url, json={"reason": "calibrating"})
    assert taken.status_code == 200
    assert taken.json()["held"] is True
    assert taken.json()["reason"] == "calibrating"
    assert hold.held_since == taken.json()["since"]
    assert httpx.get(url).json()["held"] is True
    released = httpx.delete(url)
    assert released.status_code == 200
    assert released.json()["held"] is False
    assert httpx.post(url).json()["reason"] == ""  # the body is optional


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "hold body is not valid JSON"),
        (b"[" * 2000, "hold body nests JSON 2000 levels deep"),
        (b'["x"]', "must be a JSON object"),
        (b'{"reason": 5}', "reason must be a string, got int"),
        (b'{"reason": "x", "until": 3}', "unknown field(s) until"),
        (b'{"reason": "' + b"x" * 501 + b'"}', "at most 500"),
    ],
)
def test_a_bad_body_gets_400_naming_the_problem(
    endpoint: tuple[str, UpdateHold], body: bytes, message: str
) -> None:
    url, hold = endpoint
    response = httpx.post(url, content=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert hold.held_since is None


def test_other_methods_get_405(endpoint: tuple[str, UpdateHold]) -> None:
    url, _ = endpoint
    response = httpx.put(url)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, DELETE"
