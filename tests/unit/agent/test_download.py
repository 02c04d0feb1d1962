from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tuf.api.exceptions import DownloadHTTPError, DownloadLengthMismatchError
from tuf.api.metadata import TargetFile

from edgefleet.agent.budget import BudgetSpentError, DownloadBudget
from edgefleet.agent.download import HttpxFetcher, fetch_target
from edgefleet.agent.trust import AgentTrust
from edgefleet.errors import UplinkError, VerificationError
from edgefleet.protocol.signing import SigningKey
from edgefleet.protocol.v1 import DesiredModel
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore, TufRepository
from edgefleet.testing.tuf_server import TufTestServer

TOKEN = "device-secret"
DATA = bytes(range(256)) * 40  # 10 KiB
SHA = hashlib.sha256(DATA).hexdigest()
PATH = "models/digits/r1.onnx"
INFO = TargetFile(len(DATA), {"sha256": SHA}, PATH)


@pytest.fixture
def server() -> Iterator[TufTestServer]:
    with TufTestServer(InMemoryMetadataStore(), token=TOKEN) as server:
        server.add_target_file(PATH, DATA)
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5) as client:
        yield client


def _fetch(server: TufTestServer, client: httpx.Client, tmp_path: Path) -> Path:
    url = f"{server.base_url}/tuf/targets/models/digits/{SHA}.r1.onnx"
    return fetch_target(client, url, INFO, tmp_path / "downloads", tmp_path / "models" / "m.onnx")


def test_interrupted_download_resumes_with_range(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    server.cut_after(4000)
    with pytest.raises(UplinkError, match="resumed next time"):
        _fetch(server, client, tmp_path)
    part = tmp_path / "downloads" / f"{SHA}.part"
    assert part.stat().st_size == 4000
    assert not (tmp_path / "models" / "m.onnx").exists()

    path = _fetch(server, client, tmp_path)
    assert path.read_bytes() == DATA
    assert not part.exists()
    first, second = server.target_requests()
    assert (first.range, first.status) == (None, 200)
    assert (second.range, second.status) == ("bytes=4000-", 206)


def test_download_cut_twice_still_completes(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    server.cut_after(3000, times=2)
    for _ in range(2):
        with pytest.raises(UplinkError):
            _fetch(server, client, tmp_path)
    assert _fetch(server, client, tmp_path).read_bytes() == DATA
    assert [r.range for r in server.target_requests()] == [None, "bytes=3000-", "bytes=6000-"]


def test_server_that_ignores_range_restarts_from_zero(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    server.honour_range = False
    server.cut_after(5000)
    with pytest.raises(UplinkError):
        _fetch(server, client, tmp_path)
    assert _fetch(server, client, tmp_path).read_bytes() == DATA
    assert [r.status for r in server.target_requests()] == [200, 200]


def test_corrupt_partial_file_is_discarded_after_verification(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / f"{SHA}.part").write_bytes(b"\xff" * 100)
    with pytest.raises(VerificationError, match="do not match"):
        _fetch(server, client, tmp_path)
    assert list((tmp_path / "downloads").iterdir()) == []
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []
    assert _fetch(server, client, tmp_path).read_bytes() == DATA


def test_partial_file_longer_than_declared_is_restarted(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / f"{SHA}.part").write_bytes(DATA + b"extra")
    assert _fetch(server, client, tmp_path).read_bytes() == DATA
    assert [r.range for r in server.target_requests()] == [None]


def test_complete_partial_file_is_installed_without_a_request(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / f"{SHA}.part").write_bytes(DATA)
    assert _fetch(server, client, tmp_path).read_bytes() == DATA
    assert server.target_requests() == []


def test_endless_data_is_cut_at_the_declared_length(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    server.targets[f"models/digits/{SHA}.r1.onnx"] = DATA + b"x" * 10_000
    with pytest.raises(VerificationError, match="more than the 10240 bytes"):
        _fetch(server, client, tmp_path)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_http_error_is_an_uplink_error(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    del server.targets[f"models/digits/{SHA}.r1.onnx"]
    with pytest.raises(UplinkError, match="HTTP 404"):
        _fetch(server, client, tmp_path)


def test_fetcher_streams_metadata_and_reports_http_errors(
    server: TufTestServer, client: httpx.Client
) -> None:
    server.store.put_metadata("timestamp.json", b"x" * 100)
    fetcher = HttpxFetcher(client)
    assert fetcher.download_bytes(f"{server.base_url}/tuf/metadata/timestamp.json", 100) == (
        b"x" * 100
    )
    with pytest.raises(DownloadLengthMismatchError):
        fetcher.download_bytes(f"{server.base_url}/tuf/metadata/timestamp.json", 99)
    with pytest.raises(DownloadHTTPError) as info:
        fetcher.download_bytes(f"{server.base_url}/tuf/metadata/absent.json", 100)
    assert info.value.status_code == 404


def test_agent_resumes_an_interrupted_model_download(tmp_path: Path) -> None:
    keys = RepositoryKeys.generate(tmp_path / "keys", tmp_path / "root.key")
    store = InMemoryMetadataStore()
    repo = TufRepository.initialize(store, keys, now=time.time())
    AgentTrust.bootstrap(
        tmp_path / "trust", repo.trusted_root(), SigningKey.generate().public_keys()
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TufTestServer(store, token=TOKEN) as server, httpx.Client(headers=headers) as client:
        sha = server.publish(repo, PATH, DATA, {"release": 1}, time.time())
        desired = DesiredModel(
            name="digits", version="1", target=PATH, release=1, sha256=sha, length=len(DATA)
        )
        agent = AgentTrust(
            tmp_path / "trust", tmp_path / "models", tmp_path / "dl", server.base_url, client
        )
        server.cut_after(6000)
        events: list[str] = []
        with pytest.raises(UplinkError, match=r"models/digits/r1\.onnx .*resumed next time"):
            agent.fetch_model(desired, lambda kind, _: events.append(kind))
        assert list((tmp_path / "models").iterdir()) == []
        verified = agent.fetch_model(desired, lambda kind, _: events.append(kind))
        assert verified.path.read_bytes() == DATA
        assert events == ["download_started", "download_started", "download_finished", "verified"]
        assert [r.range for r in server.target_requests()] == [None, "bytes=6000-"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _fetch_within(
    server: TufTestServer, client: httpx.Client, tmp_path: Path, budget: DownloadBudget
) -> Path:
    url = f"{server.base_url}/tuf/targets/models/digits/{SHA}.r1.onnx"
    dest = tmp_path / "models" / "m.onnx"
    return fetch_target(client, url, INFO, tmp_path / "downloads", dest, budget=budget)


def test_a_daily_budget_stops_the_download_and_the_next_day_resumes_it(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    clock = Clock(86400.0 * 100 + 60)
    budget = DownloadBudget(tmp_path / "budget.json", clock=clock)
    budget.limit = 4000
    with pytest.raises(BudgetSpentError, match="budget of 4000 bytes is spent"):
        _fetch_within(server, client, tmp_path, budget)
    part = tmp_path / "downloads" / f"{SHA}.part"
    assert part.stat().st_size == 4000  # kept, and never more than the budget
    with pytest.raises(BudgetSpentError):  # the same day: not even a request
        _fetch_within(server, client, tmp_path, budget)
    assert len(server.target_requests()) == 1

    clock.now += 86400
    restarted = DownloadBudget(tmp_path / "budget.json", clock=clock)
    restarted.limit = 4000
    with pytest.raises(BudgetSpentError):
        _fetch_within(server, client, tmp_path, restarted)
    assert part.stat().st_size == 8000
    clock.now += 86400
    assert _fetch_within(server, client, tmp_path, restarted).read_bytes() == DATA
    assert [r.range for r in server.target_requests()] == [
        "bytes=0-3999",
        "bytes=4000-7999",
        "bytes=8000-",
    ]
    assert restarted.used_today() == len(DATA) - 8000


def test_the_budget_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    budget = DownloadBudget(tmp_path / "budget.json", clock=clock)
    budget.spend(700)
    again = DownloadBudget(tmp_path / "budget.json", clock=clock)
    again.limit = 1000
    assert again.remaining() == 300
    clock.now += 86400
    assert again.remaining() == 1000


def test_a_server_ignoring_the_range_end_still_cannot_overrun_the_budget(
    server: TufTestServer, client: httpx.Client, tmp_path: Path
) -> None:
    server.honour_range = False
    budget = DownloadBudget(tmp_path / "budget.json")
    budget.limit = 3000
    with pytest.raises(BudgetSpentError):
        _fetch_within(server, client, tmp_path, budget)
    assert (tmp_path / "downloads" / f"{SHA}.part").stat().st_size == 3000
    assert budget.used_today() == 3000


def test_an_unreadable_budget_file_counts_as_spent(tmp_path: Path) -> None:
    (tmp_path / "budget.json").write_text("garbage")
    budget = DownloadBudget(tmp_path / "budget.json")
    budget.limit = 10**9
    assert budget.remaining() == 0
