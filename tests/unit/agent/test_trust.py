from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgefleet.agent.trust import AgentTrust
from edgefleet.errors import ConfigurationError, UplinkError, VerificationError
from edgefleet.protocol.signing import SigningKey, sign_desired_state
from edgefleet.protocol.v1 import DesiredModel, DesiredState, SignedDesiredState
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore, TufRepository
from edgefleet.testing.tuf_server import TufTestServer

TOKEN = "device-secret"
MODEL = b"onnx model bytes " * 64


@dataclass
class World:
    repo: TufRepository
    server: TufTestServer
    client: httpx.Client
    base: Path
    director: SigningKey

    @property
    def agent(self) -> AgentTrust:
        return self.reopen()

    def desired(self, name: str, release: int, data: bytes) -> DesiredModel:
        sha256 = self.server.publish(
            self.repo,
            f"models/{name}/r{release}.onnx",
            data,
            {"release": release, "model": name, "golden": None},
            time.time(),
        )
        return DesiredModel(
            name=name,
            version=str(release),
            target=f"models/{name}/r{release}.onnx",
            release=release,
            sha256=sha256,
            length=len(data),
        )

    def reopen(self) -> AgentTrust:
        return AgentTrust(
            self.base / "trust",
            self.base / "models",
            self.base / "downloads",
            self.server.base_url,
            self.client,
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> RepositoryKeys:
    base = tmp_path_factory.mktemp("repo-keys")
    return RepositoryKeys.generate(base / "keys", base / "root.key")


@pytest.fixture
def world(tmp_path: Path, keys: RepositoryKeys) -> Iterator[World]:
    store = InMemoryMetadataStore()
    repo = TufRepository.initialize(store, keys, now=time.time())
    director = SigningKey.generate()
    AgentTrust.bootstrap(tmp_path / "trust", repo.trusted_root(), director.public_keys())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        TufTestServer(store, token=TOKEN) as server,
        httpx.Client(headers=headers, timeout=5) as client,
    ):
        yield World(repo, server, client, tmp_path, director)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_fetch_model_downloads_verifies_and_installs(world: World) -> None:
    desired = world.desired("digits", 1, MODEL)
    events: list[tuple[str, str]] = []
    verified = world.agent.fetch_model(desired, lambda kind, detail: events.append((kind, detail)))
    assert verified.path == world.base / "models" / f"{desired.sha256}.onnx"
    assert verified.path.read_bytes() == MODEL
    assert (verified.target, verified.sha256, verified.release) == (
        desired.target,
        desired.sha256,
        1,
    )
    assert verified.custom == {"release": 1, "model": "digits", "golden": None}
    assert verified.golden_path is None
    assert [kind for kind, _ in events] == ["download_started", "download_finished", "verified"]
    assert _files(world.base / "downloads") == []
    [request] = world.server.target_requests()
    assert request.path == f"/tuf/targets/models/digits/{desired.sha256}.r1.onnx"
    assert (request.range, request.status) == (None, 200)


def test_golden_inputs_named_by_the_target_are_fetched_too(world: World) -> None:
    golden = b"npz golden inputs"
    now = time.time()
    golden_sha = world.server.publish(world.repo, "golden/digits/r1.npz", golden, {}, now)
    sha = world.server.publish(
        world.repo,
        "models/digits/r1.onnx",
        MODEL,
        {"release": 1, "model": "digits", "golden": "golden/digits/r1.npz"},
        now,
    )
    desired = DesiredModel(
        name="digits",
        version="1",
        target="models/digits/r1.onnx",
        release=1,
        sha256=sha,
        length=len(MODEL),
    )
    verified = world.agent.fetch_model(desired)
    assert verified.golden_path == world.base / "models" / f"{golden_sha}.npz"
    assert verified.golden_path.read_bytes() == golden


def test_a_verified_file_on_disk_is_reused(world: World) -> None:
    desired = world.desired("digits", 1, MODEL)
    first = world.agent.fetch_model(desired)
    events: list[tuple[str, str]] = []
    second = world.reopen().fetch_model(desired, lambda k, d: events.append((k, d)))
    assert second == first
    assert len(world.server.target_requests()) == 1
    assert [kind for kind, _ in events] == ["verified"]
    assert "already on disk" in events[0][1]


def test_a_corrupted_file_on_disk_is_replaced(world: World) -> None:
    desired = world.desired("digits", 1, MODEL)
    path = world.agent.fetch_model(desired).path
    path.write_bytes(b"bit rot")
    assert world.agent.fetch_model(desired).path.read_bytes() == MODEL
    assert len(world.server.target_requests()) == 2


def test_unknown_target_is_refused(world: World) -> None:
    desired = world.desired("digits", 1, MODEL).model_copy(update={"target": "models/x/r1.onnx"})
    with pytest.raises(VerificationError, match=r"models/x/r1\.onnx is not in the signed TUF"):
        world.agent.fetch_model(desired)


def test_refused_credential_is_an_uplink_error(world: World) -> None:
    desired = world.desired("digits", 1, MODEL)
    with httpx.Client(timeout=5) as anonymous:
        agent = AgentTrust(
            world.base / "trust",
            world.base / "models",
            world.base / "downloads",
            world.server.base_url,
            anonymous,
        )
        with pytest.raises(UplinkError, match="HTTP 401"):
            agent.fetch_model(desired)


def test_unreachable_server_is_an_uplink_error(world: World) -> None:
    desired = world.desired("digits", 1, MODEL)
    agent = AgentTrust(
        world.base / "trust",
        world.base / "models",
        world.base / "downloads",
        "http://127.0.0.1:9/api/device/v1",
        world.client,
    )
    with pytest.raises(UplinkError, match="digits release 1"):
        agent.fetch_model(desired)


def test_desired_state_versions_only_grow_across_restarts(world: World) -> None:
    now = time.time()

    def signed(version: int) -> SignedDesiredState:
        state = DesiredState(device_id="dev-1", version=version, issued_at=now, expires_at=now + 60)
        return sign_desired_state(state, world.director)

    assert world.agent.verify_desired_state(signed(5), "dev-1").version == 5
    assert world.agent.desired_state_version() == 5
    restarted = world.reopen()
    with pytest.raises(VerificationError, match="replayed desired state version 3 < 5"):
        restarted.verify_desired_state(signed(3), "dev-1")
    assert restarted.verify_desired_state(signed(5), "dev-1").version == 5
    assert restarted.verify_desired_state(signed(6), "dev-1").version == 6
    assert world.reopen().desired_state_version() == 6


def test_desired_state_signed_by_another_key_is_refused(world: World) -> None:
    now = time.time()
    state = DesiredState(device_id="dev-1", version=1, issued_at=now, expires_at=now + 60)
    with pytest.raises(VerificationError, match="unknown key"):
        world.agent.verify_desired_state(sign_desired_state(state, SigningKey.generate()), "dev-1")
    assert world.agent.desired_state_version() == 0


def test_accepted_releases_persist_and_never_decrease(world: World) -> None:
    assert world.agent.highest_release("digits") == 0
    world.agent.accept_release("digits", 3)
    world.agent.accept_release("digits", 2)
    world.agent.accept_release("other", 1)
    restarted = world.reopen()
    assert restarted.highest_release("digits") == 3
    assert restarted.highest_release("other") == 1
    state = json.loads((world.base / "trust" / "state.json").read_text())
    assert state["releases"] == {"digits": 3, "other": 1}


def test_an_unenrolled_trust_dir_is_refused(tmp_path: Path) -> None:
    with httpx.Client() as client, pytest.raises(ConfigurationError, match="enrol first"):
        AgentTrust(tmp_path / "t", tmp_path / "m", tmp_path / "d", "http://127.0.0.1:9", client)


def test_bootstrap_refuses_a_tampered_root(world: World, tmp_path: Path) -> None:
    root = world.repo.trusted_root()
    root["signed"]["expires"] = "2099-01-01T00:00:00Z"
    with pytest.raises(VerificationError, match="enrolment TUF root refused"):
        AgentTrust.bootstrap(tmp_path / "t", root, world.director.public_keys())
    with pytest.raises(VerificationError, match="enrolment TUF root refused"):
        AgentTrust.bootstrap(tmp_path / "t", {"signed": {}}, world.director.public_keys())


def test_bootstrap_refuses_a_key_under_the_wrong_id(world: World, tmp_path: Path) -> None:
    keys = {"ab" * 32: world.director.public_hex}
    with pytest.raises(VerificationError, match="does not match its id"):
        AgentTrust.bootstrap(tmp_path / "t", world.repo.trusted_root(), keys)


def test_bootstrap_again_forgets_the_old_trust_state(world: World) -> None:
    world.agent.fetch_model(world.desired("digits", 1, MODEL))
    world.agent.accept_release("digits", 1)
    assert (world.base / "trust" / "tuf" / "timestamp.json").exists()
    trust = world.base / "trust"
    AgentTrust.bootstrap(trust, world.repo.trusted_root(), world.director.public_keys())
    assert world.reopen().highest_release("digits") == 0
    assert _files(trust / "tuf") == []


def test_a_renewed_root_on_the_server_is_followed(world: World) -> None:
    world.agent.fetch_model(world.desired("digits", 1, MODEL))
    assert world.repo.renew_root(time.time()) == 2
    world.agent.fetch_model(world.desired("digits", 2, MODEL))
    history = world.base / "trust" / "tuf" / "root_history"
    assert sorted(p.name for p in history.iterdir()) == ["1.root.json", "2.root.json"]
