from __future__ import annotations

import hashlib
import json
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, Targets
from tuf.api.metadata import Timestamp as TimestampRole

from edgefleet.errors import ConfigurationError, ConflictError, NotFoundError
from edgefleet.server.registry.keys import ExpirySettings, RepositoryKeys
from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore, TargetSpec, TufRepository

NOW = 1_800_000_000.0
DAY = 86_400.0
SHA = hashlib.sha256(b"model bytes").hexdigest()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> RepositoryKeys:
    base = tmp_path_factory.mktemp("keys")
    return RepositoryKeys.generate(base / "keys", base / "offline" / "root.key")


@pytest.fixture
def store() -> InMemoryMetadataStore:
    return InMemoryMetadataStore()


@pytest.fixture
def repo(store: InMemoryMetadataStore, keys: RepositoryKeys) -> TufRepository:
    return TufRepository.initialize(store, keys, now=NOW)


def _md(repo: TufRepository, filename: str) -> Metadata[Any]:
    return Metadata.from_bytes(repo.metadata(filename))


def _versions(repo: TufRepository) -> tuple[int, int, int]:
    timestamp = _md(repo, "timestamp.json").signed
    snapshot_v = timestamp.snapshot_meta.version
    snapshot = _md(repo, f"{snapshot_v}.snapshot.json").signed
    return snapshot.meta["targets.json"].version, snapshot_v, timestamp.version


def _verify_chain(repo: TufRepository) -> None:
    """Every current file verifies against root, as a TUF client would check it."""
    root_md = _md(repo, "root.json")
    root_md.verify_delegate("root", root_md)
    targets_v, snapshot_v, _ = _versions(repo)
    for role, filename in [
        ("timestamp", "timestamp.json"),
        ("snapshot", f"{snapshot_v}.snapshot.json"),
        ("targets", f"{targets_v}.targets.json"),
    ]:
        root_md.verify_delegate(role, _md(repo, filename))


def test_initialize_writes_version_one_of_every_role(
    repo: TufRepository, store: InMemoryMetadataStore
) -> None:
    assert store.filenames() == [
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "root.json",
        "timestamp.json",
    ]
    assert _versions(repo) == (1, 1, 1)
    root = _md(repo, "root.json").signed
    assert isinstance(root, Root)
    assert root.consistent_snapshot is True
    assert root.expires.timestamp() == NOW + 365 * DAY
    assert _md(repo, "timestamp.json").signed.expires.timestamp() == NOW + DAY
    assert _md(repo, "1.snapshot.json").signed.expires.timestamp() == NOW + 7 * DAY
    assert _md(repo, "1.targets.json").signed.expires.timestamp() == NOW + 90 * DAY
    _verify_chain(repo)


def test_initialize_refuses_an_existing_repository(
    repo: TufRepository, store: InMemoryMetadataStore, keys: RepositoryKeys
) -> None:
    with pytest.raises(ConflictError, match="already holds"):
        TufRepository.initialize(store, keys, now=NOW)


def test_initialize_needs_the_root_key(tmp_path: Path, keys: RepositoryKeys) -> None:
    online = RepositoryKeys(keys.targets, keys.snapshot, keys.timestamp)
    with pytest.raises(ConfigurationError, match="root key"):
        TufRepository.initialize(InMemoryMetadataStore(), online, now=NOW)


def test_open_without_metadata_or_with_foreign_keys_is_refused(
    tmp_path: Path, repo: TufRepository, store: InMemoryMetadataStore, keys: RepositoryKeys
) -> None:
    with pytest.raises(ConfigurationError, match="no TUF metadata"):
        TufRepository(InMemoryMetadataStore(), keys)
    other = RepositoryKeys.generate(tmp_path / "k", tmp_path / "root.key")
    with pytest.raises(ConfigurationError, match="targets key"):
        TufRepository(store, other)


def test_add_target_publishes_new_targets_snapshot_and_timestamp(repo: TufRepository) -> None:
    custom = {"release": 1, "model": "digits", "golden": None}
    repo.add_target("models/digits/r1.onnx", 11, SHA, custom, NOW + 60)
    assert _versions(repo) == (2, 2, 2)
    repo.add_target("models/digits/r2.onnx", 11, SHA, {"release": 2}, NOW + 120)
    assert _versions(repo) == (3, 3, 3)
    _verify_chain(repo)
    targets = _md(repo, "3.targets.json").signed
    assert isinstance(targets, Targets)
    info = targets.targets["models/digits/r1.onnx"]
    assert (info.length, info.hashes, info.custom) == (11, {"sha256": SHA}, custom)
    assert targets.expires.timestamp() == NOW + 120 + 90 * DAY
    assert repo.target("models/digits/r2.onnx") == TargetSpec(
        "models/digits/r2.onnx", 11, SHA, {"release": 2}
    )
    assert set(repo.targets()) == {"models/digits/r1.onnx", "models/digits/r2.onnx"}
    # Older versions stay published: a client that read the previous timestamp still finds them.
    assert _md(repo, "2.targets.json").signed.version == 2
    snapshot = _md(repo, "3.snapshot.json").signed
    assert isinstance(snapshot, Snapshot)
    meta = snapshot.meta["targets.json"]
    assert meta.length == len(repo.metadata("3.targets.json"))


def test_add_targets_publishes_one_version_for_a_batch(repo: TufRepository) -> None:
    repo.add_targets(
        [
            TargetSpec("golden/digits/r1.npz", 5, SHA),
            TargetSpec("models/digits/r1.onnx", 11, SHA, {"golden": "golden/digits/r1.npz"}),
        ],
        NOW,
    )
    assert _versions(repo) == (2, 2, 2)
    assert repo.target("golden/digits/r1.npz") is not None


@pytest.mark.parametrize(
    ("path", "sha256", "match"),
    [
        ("/abs.onnx", SHA, "invalid TUF target path"),
        ("models/../x.onnx", SHA, "invalid TUF target path"),
        ("models//x.onnx", SHA, "invalid TUF target path"),
        ("models/x.onnx", "ABC", "64 lowercase hex"),
    ],
)
def test_bad_target_specs_are_refused(path: str, sha256: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TargetSpec(path, 1, sha256)


def test_timestamp_is_re_signed_only_when_half_its_lifetime_is_gone(repo: TufRepository) -> None:
    assert repo.refresh_timestamp(NOW + 0.4 * DAY) is False
    assert _versions(repo) == (1, 1, 1)
    assert repo.refresh_timestamp(NOW + 0.6 * DAY) is True
    assert _versions(repo) == (1, 1, 2)
    timestamp = _md(repo, "timestamp.json").signed
    assert isinstance(timestamp, TimestampRole)
    assert timestamp.expires.timestamp() == NOW + 1.6 * DAY
    assert repo.refresh_timestamp(NOW + 0.7 * DAY) is False
    assert repo.refresh_timestamp(NOW + 0.7 * DAY, force=True) is True
    assert _versions(repo) == (1, 1, 3)
    _verify_chain(repo)


def test_refresh_expiring_re_signs_snapshot_and_targets_before_they_expire(
    repo: TufRepository,
) -> None:
    assert repo.refresh_expiring(NOW + 0.1 * DAY) == []
    assert repo.refresh_expiring(NOW + 0.6 * DAY) == ["timestamp"]
    assert repo.refresh_expiring(NOW + 4 * DAY) == ["snapshot", "timestamp"]
    assert _versions(repo) == (1, 2, 3)
    assert repo.refresh_expiring(NOW + 46 * DAY) == ["targets", "snapshot", "timestamp"]
    assert _versions(repo) == (2, 3, 4)
    _verify_chain(repo)


def test_expiry_is_configurable(store: InMemoryMetadataStore, keys: RepositoryKeys) -> None:
    expiry = ExpirySettings(timestamp=timedelta(hours=2))
    repo = TufRepository.initialize(store, keys, expiry=expiry, now=NOW)
    assert _md(repo, "timestamp.json").signed.expires.timestamp() == NOW + 7200
    assert repo.refresh_timestamp(NOW + 3700) is True
    with pytest.raises(ConfigurationError, match="positive"):
        ExpirySettings(snapshot=timedelta(0))


def test_renew_root_publishes_a_new_version(repo: TufRepository, keys: RepositoryKeys) -> None:
    assert repo.renew_root(NOW + 200 * DAY) == 2
    assert repo.trusted_root()["signed"]["version"] == 2
    assert json.loads(repo.metadata("2.root.json")) == repo.trusted_root()
    assert repo.metadata("1.root.json") != repo.metadata("2.root.json")
    _verify_chain(repo)


def test_day_to_day_operation_needs_no_root_key(
    repo: TufRepository, store: InMemoryMetadataStore, keys: RepositoryKeys
) -> None:
    online = TufRepository(store, RepositoryKeys(keys.targets, keys.snapshot, keys.timestamp))
    online.add_target("models/m/r1.onnx", 3, SHA, {"release": 1}, NOW)
    assert online.refresh_timestamp(NOW, force=True)
    with pytest.raises(ConfigurationError, match="root key"):
        online.renew_root(NOW)


def test_metadata_and_root_for_enrolment(repo: TufRepository) -> None:
    root = repo.trusted_root()
    assert root["signed"]["_type"] == "root"
    assert json.loads(repo.metadata("1.root.json")) == root
    with pytest.raises(NotFoundError, match=r"2\.root\.json"):
        repo.metadata("2.root.json")


def test_target_file_name_follows_the_tuf_client_rule() -> None:
    name = TufRepository.target_file_name("models/digits/r1.onnx", SHA)
    assert name == f"models/digits/{SHA}.r1.onnx"
    assert TufRepository.target_file_name("top.bin", SHA) == f"{SHA}.top.bin"
    assert TufRepository.split_target_file_name(name) == ("models/digits/r1.onnx", SHA)
    with pytest.raises(NotFoundError):
        TufRepository.split_target_file_name("models/digits/r1.onnx")


def test_concurrent_writers_in_one_process_lose_no_target(
    store: InMemoryMetadataStore, keys: RepositoryKeys
) -> None:
    held: list[int] = []

    @contextmanager
    def store_lock() -> Iterator[None]:
        held.append(1)
        yield

    repo = TufRepository.initialize(store, keys, now=NOW, lock=store_lock)
    threads = [
        threading.Thread(
            target=repo.add_target, args=(f"models/m/r{i}.onnx", 1, SHA, {"release": i}, NOW)
        )
        for i in range(1, 9)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(repo.targets()) == 8
    assert _versions(repo) == (9, 9, 9)
    assert len(held) == 8


def test_keys_are_owner_only_files_and_load_back(tmp_path: Path) -> None:
    keys_dir, root_path = tmp_path / "keys", tmp_path / "offline" / "root.key"
    generated = RepositoryKeys.generate(keys_dir, root_path)
    for path in [*keys_dir.iterdir(), root_path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in keys_dir.iterdir()) == [
        "snapshot.key",
        "targets.key",
        "timestamp.key",
    ]
    assert RepositoryKeys.root_key_online(keys_dir) is False
    loaded = RepositoryKeys.load(keys_dir)
    assert loaded.root is None
    assert loaded.targets.public_key == generated.targets.public_key
    with_root = RepositoryKeys.load(keys_dir, root_path)
    assert with_root.root is not None
    assert generated.root is not None
    assert with_root.root.public_key == generated.root.public_key
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        RepositoryKeys.generate(keys_dir, tmp_path / "root2.key")


def test_root_key_next_to_online_keys_is_reported(tmp_path: Path) -> None:
    RepositoryKeys.generate(tmp_path / "keys", tmp_path / "keys" / "root.key")
    assert RepositoryKeys.root_key_online(tmp_path / "keys") is True


def test_missing_or_malformed_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"targets key .* does not exist"):
        RepositoryKeys.load(tmp_path)
    RepositoryKeys.generate(tmp_path / "keys", tmp_path / "root.key")
    (tmp_path / "keys" / "snapshot.key").write_text("garbage")
    with pytest.raises(ConfigurationError, match="cannot read the TUF snapshot key"):
        RepositoryKeys.load(tmp_path / "keys")
