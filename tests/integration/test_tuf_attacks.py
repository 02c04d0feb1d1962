"""The attacks of the fleet-core design, played against a real agent over real HTTP.

The attacker controls the mirror (the metadata store and target files the server hands out)
but not the repository's keys; every attack must end in a clear edgefleet error and leave
nothing new under ``models/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgefleet.agent.trust import AgentTrust
from edgefleet.errors import DowngradeError, ExpiredError, VerificationError
from edgefleet.protocol.signing import SigningKey
from edgefleet.protocol.v1 import DesiredModel
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore, TufRepository
from edgefleet.testing.tuf_server import TufTestServer

TOKEN = "device-secret"
DAY = 86_400.0
GOOD = b"the good model " * 100
OLD = b"the old model " * 100


@dataclass
class Fleet:
    repo: TufRepository
    store: InMemoryMetadataStore
    server: TufTestServer
    agent: AgentTrust
    base: Path

    def release(self, name: str, release: int, data: bytes) -> DesiredModel:
        """Publish ``data`` as ``release`` of ``name``; the desired state that names it."""
        target = f"models/{name}/r{release}.onnx"
        custom = {"release": release, "model": name, "golden": None}
        sha256 = self.server.publish(self.repo, target, data, custom, time.time())
        return DesiredModel(
            name=name,
            version=str(release),
            target=target,
            release=release,
            sha256=sha256,
            length=len(data),
        )

    def models(self) -> list[str]:
        return sorted(p.name for p in (self.base / "models").iterdir())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> RepositoryKeys:
    base = tmp_path_factory.mktemp("attack-keys")
    return RepositoryKeys.generate(base / "keys", base / "root.key")


@pytest.fixture
def fleet(tmp_path: Path, keys: RepositoryKeys) -> Iterator[Fleet]:
    store = InMemoryMetadataStore()
    repo = TufRepository.initialize(store, keys, now=time.time())
    AgentTrust.bootstrap(
        tmp_path / "trust", repo.trusted_root(), SigningKey.generate().public_keys()
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        TufTestServer(store, token=TOKEN) as server,
        httpx.Client(headers=headers, timeout=5) as client,
    ):
        agent = AgentTrust(
            tmp_path / "trust", tmp_path / "models", tmp_path / "downloads", server.base_url, client
        )
        yield Fleet(repo, store, server, agent, tmp_path)


def test_tampered_artifact_bytes_are_refused_and_never_installed(fleet: Fleet) -> None:
    desired = fleet.release("digits", 1, GOOD)
    name = TufRepository.target_file_name(desired.target, desired.sha256)
    evil = bytearray(GOOD)
    evil[100] ^= 0xFF
    fleet.server.targets[name] = bytes(evil)
    with pytest.raises(VerificationError, match=r"models/digits/r1\.onnx.*do not match"):
        fleet.agent.fetch_model(desired)
    assert fleet.models() == []
    assert list((fleet.base / "downloads").iterdir()) == []


def test_replayed_older_timestamp_is_refused(fleet: Fleet) -> None:
    old_timestamp = fleet.store.get_metadata("timestamp.json")
    assert old_timestamp is not None
    fleet.agent.fetch_model(fleet.release("digits", 1, GOOD))
    desired = fleet.release("digits", 2, GOOD)
    fleet.server.metadata_overrides["timestamp.json"] = old_timestamp
    with pytest.raises(VerificationError, match=r"rollback refused.*timestamp version 1"):
        fleet.agent.fetch_model(desired)


def test_replayed_older_snapshot_is_refused(fleet: Fleet) -> None:
    fleet.agent.fetch_model(fleet.release("digits", 1, GOOD))
    old_snapshot = fleet.store.get_metadata("2.snapshot.json")
    assert old_snapshot is not None
    desired = fleet.release("digits", 2, GOOD)
    fleet.server.metadata_overrides["3.snapshot.json"] = old_snapshot
    with pytest.raises(VerificationError, match=r"hash mismatch.*metadata/3\.snapshot\.json"):
        fleet.agent.fetch_model(desired)


def test_metadata_signed_with_foreign_keys_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    desired = fleet.release("digits", 1, GOOD)
    foreign = RepositoryKeys.generate(tmp_path / "foreign", tmp_path / "foreign-root.key")
    fake_store = InMemoryMetadataStore()
    fake = TufRepository.initialize(fake_store, foreign, now=time.time())
    fake.add_target(desired.target, desired.length, desired.sha256, {"release": 1}, time.time())
    fake.add_target(desired.target, desired.length, desired.sha256, {"release": 1}, time.time())
    fleet.server.store = fake_store
    with pytest.raises(VerificationError, match=r"not validly signed.*timestamp"):
        fleet.agent.fetch_model(desired)


def test_expired_timestamp_is_a_freeze_and_refused(fleet: Fleet) -> None:
    desired = fleet.release("digits", 1, GOOD)
    fleet.repo.refresh_timestamp(time.time() - 2 * DAY, force=True)
    with pytest.raises(ExpiredError, match=r"timestamp\.json is expired"):
        fleet.agent.fetch_model(desired)
    assert fleet.models() == []


def test_mix_and_match_between_desired_state_and_registry_is_refused(fleet: Fleet) -> None:
    desired = fleet.release("digits", 1, GOOD)
    other = fleet.release("digits", 2, OLD)
    mixed = desired.model_copy(update={"sha256": other.sha256, "length": other.length})
    with pytest.raises(VerificationError, match="mix-and-match"):
        fleet.agent.fetch_model(mixed)
    assert fleet.models() == []


def test_release_differing_from_the_signed_one_is_refused(fleet: Fleet) -> None:
    desired = fleet.release("digits", 2, GOOD)
    with pytest.raises(VerificationError, match="signed release 2 differs"):
        fleet.agent.fetch_model(desired.model_copy(update={"release": 5}))


def test_forced_downgrade_is_refused(fleet: Fleet) -> None:
    r1 = fleet.release("digits", 1, OLD)
    r2 = fleet.release("digits", 2, GOOD)
    fleet.agent.fetch_model(r2)
    fleet.agent.accept_release("digits", 2)
    with pytest.raises(DowngradeError, match="release 1 is older than release 2"):
        fleet.agent.fetch_model(r1)
    assert fleet.models() == [f"{r2.sha256}.onnx"]


def test_rollback_published_as_a_new_release_is_accepted(fleet: Fleet) -> None:
    r1 = fleet.release("digits", 1, OLD)
    fleet.agent.fetch_model(r1)
    fleet.agent.accept_release("digits", 1)
    r2 = fleet.release("digits", 2, GOOD)
    fleet.agent.fetch_model(r2)
    fleet.agent.accept_release("digits", 2)
    r3 = fleet.release("digits", 3, OLD)
    verified = fleet.agent.fetch_model(r3)
    assert verified.release == 3
    assert verified.sha256 == r1.sha256
    assert verified.path.read_bytes() == OLD
    fleet.agent.accept_release("digits", 3)
    assert fleet.agent.highest_release("digits") == 3
    assert len(fleet.server.target_requests()) == 2  # the old file was still on disk
