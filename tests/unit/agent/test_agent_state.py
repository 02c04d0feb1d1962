from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from edgefleet.agent._files import remove_temporaries, write_atomic
from edgefleet.agent.state import (
    AgentState,
    Credential,
    FailureRecord,
    ModelRecord,
    RunMarker,
    StateStore,
)
from edgefleet.errors import ConfigurationError


def _record(version: str) -> ModelRecord:
    return ModelRecord(
        name="digits", version=version, release=int(version), sha256="ab" * 32, path="/m/x.onnx"
    )


def test_state_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.load() == AgentState()
    state = AgentState(
        active=_record("2"),
        previous=_record("1"),
        desired_version=5,
        watching_since=123.5,
        failures={"5:cd": FailureRecord(attempts=2, retry_at=99.0, reason="smoke")},
    )
    store.save(state)
    assert store.load() == state
    assert json.loads((tmp_path / "state.json").read_text())["active"]["version"] == "2"


def test_concurrent_readers_never_see_a_partial_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save(AgentState(active=_record("0")))
    stop = threading.Event()
    problems: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                AgentState.model_validate(json.loads((tmp_path / "state.json").read_text()))
            except BaseException as exc:
                problems.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(50):
        store.save(AgentState(active=_record(str(i)), desired_version=i))
    stop.set()
    reader.join()
    assert problems == []
    assert store.load().desired_version == 49
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename is made to fail, as a full disk or a crash before the rename would: nothing
    real can fail at exactly that point on demand."""
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_temporaries_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    stale = tmp_path / ".state.json.abc123.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / ".credential.json.abc123.tmp"
    other.write_bytes(b"x")
    assert remove_temporaries(path) == [stale]
    assert other.exists()


def test_a_corrupt_state_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert StateStore(path).load() == AgentState()
    assert not path.exists()
    assert [p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir()] == [True]


def test_failures_keep_only_the_newest(tmp_path: Path) -> None:
    state = AgentState()
    for i in range(40):
        state = state.with_failure(f"{i}:x", FailureRecord(attempts=1, retry_at=float(i)))
    assert len(state.failures) == 16
    assert "39:x" in state.failures
    assert "0:x" not in state.failures


def test_credential_is_written_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "credential.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        Credential(device_id="dev-1", credential="s3cret", server_url="http://cp").save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Credential.load(path)
    assert loaded is not None
    assert loaded.device_id == "dev-1"
    assert "s3cret" not in repr(loaded)
    assert [p.name for p in tmp_path.iterdir()] == ["credential.json"]


def test_missing_credential_is_none_and_a_broken_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "credential.json"
    assert Credential.load(path) is None
    path.write_text('{"device_id": "d"}')
    with pytest.raises(ConfigurationError, match="cannot read the device credential"):
        Credential.load(path)


def test_a_readable_credential_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "credential.json"
    Credential(device_id="d", credential="c", server_url="http://cp").save(path)
    path.chmod(0o644)
    assert Credential.load(path) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_run_marker_tells_a_crash_from_a_clean_stop(tmp_path: Path) -> None:
    marker = RunMarker(tmp_path / "agent.running")
    assert marker.begin() is False
    assert marker.begin() is True  # never ended: the previous run crashed
    marker.end()
    assert marker.begin() is False
