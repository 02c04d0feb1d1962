"""The control plane's TUF repository: signed metadata that protects every model artifact.

Consistent snapshots, one Ed25519 key per top-level role (see :mod:`.keys`). Metadata bytes live
behind :class:`MetadataStore` under the names a TUF client asks for: ``root.json`` and
``<v>.root.json``, ``timestamp.json``, ``<v>.snapshot.json`` and ``<v>.targets.json``. The
current snapshot and targets are found through the timestamp, so writing ``timestamp.json`` last
publishes a new repository state atomically: a client that fetched the previous timestamp still
finds every file it names.

Every operation reads the current state from the store, so several server processes can share
one store; callers serialise writers across processes with the ``lock`` factory (a store lock).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from securesystemslib.signer import Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
)
from tuf.api.metadata import Timestamp as TimestampRole
from tuf.api.serialization.json import JSONSerializer

from edgefleet.errors import ConfigurationError, ConflictError, NotFoundError
from edgefleet.server.registry.keys import ONLINE_ROLES, ExpirySettings, RepositoryKeys

__all__ = ["InMemoryMetadataStore", "MetadataStore", "TargetSpec", "TufRepository"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SERIALIZER = JSONSerializer(compact=True)


class MetadataStore(Protocol):
    """Where TUF metadata bytes are kept (the database in production)."""

    def get_metadata(self, filename: str) -> bytes | None:
        """The stored bytes of ``filename``, or None."""
        ...

    def put_metadata(self, filename: str, body: bytes) -> None:
        """Store ``body`` under ``filename``, replacing what was there."""
        ...


class InMemoryMetadataStore:
    """A :class:`MetadataStore` in a dict, for tests and single-process tools."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_metadata(self, filename: str) -> bytes | None:
        """The stored bytes of ``filename``, or None."""
        with self._lock:
            return self._files.get(filename)

    def put_metadata(self, filename: str, body: bytes) -> None:
        """Store ``body`` under ``filename``."""
        with self._lock:
            self._files[filename] = bytes(body)

    def filenames(self) -> list[str]:
        """Every stored file name, sorted."""
        with self._lock:
            return sorted(self._files)


@dataclass(frozen=True)
class TargetSpec:
    """One target file: its TUF path, length, SHA-256 and custom fields."""

    path: str
    length: int
    sha256: str
    custom: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = self.path.split("/")
        if not self.path or self.path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid TUF target path {self.path!r}")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"target {self.path}: sha256 must be 64 lowercase hex digits")
        if self.length < 0:
            raise ValueError(f"target {self.path}: length must not be negative")


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


class TufRepository:
    """A TUF repository whose metadata lives in a :class:`MetadataStore`.

    Parameters
    ----------
    store
        Where the metadata is; it must already hold a repository (see :meth:`initialize`).
    keys
        The role keys; the root key may be None (offline).
    expiry
        Metadata lifetimes.
    lock
        Optional factory of a context manager held around every write, for writers in other
        processes (a store lock). Writers in this process are serialised by a thread lock.

    Raises
    ------
    ConfigurationError
        The store holds no repository, or an online key is not the one root trusts.
    """

    def __init__(
        self,
        store: MetadataStore,
        keys: RepositoryKeys,
        *,
        expiry: ExpirySettings | None = None,
        lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._expiry = expiry or ExpirySettings()
        self._external_lock = lock
        self._lock = threading.Lock()
        if store.get_metadata("root.json") is None:
            raise ConfigurationError("no TUF metadata in the store; initialise the repository")
        self._check_keys(self._load_root().signed)

    @classmethod
    def initialize(
        cls,
        store: MetadataStore,
        keys: RepositoryKeys,
        *,
        expiry: ExpirySettings | None = None,
        now: float,
        lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> TufRepository:
        """Create version 1 of root, targets, snapshot and timestamp, and open the repository.

        Raises
        ------
        ConflictError
            The store already holds a repository.
        ConfigurationError
            The root key was not loaded.
        """
        expiry = expiry or ExpirySettings()
        if store.get_metadata("root.json") is not None:
            raise ConflictError("the store already holds TUF metadata; refusing to replace root")
        root = Root(expires=_utc(now) + expiry.root, consistent_snapshot=True)
        for role in ONLINE_ROLES:
            root.add_key(keys.signer(role).public_key, role)
        root.add_key(keys.signer("root").public_key, "root")
        root_md = Metadata(root)
        root_md.sign(keys.signer("root"))
        body = root_md.to_bytes(_SERIALIZER)
        targets = Metadata(Targets(expires=_utc(now) + expiry.targets))
        _sign_put(store, targets, keys.signer("targets"), "1.targets.json")
        snapshot = Metadata(Snapshot(expires=_utc(now) + expiry.snapshot))
        snapshot.signed.meta["targets.json"] = _meta_of(1, store.get_metadata("1.targets.json"))
        _sign_put(store, snapshot, keys.signer("snapshot"), "1.snapshot.json")
        timestamp = Metadata(TimestampRole(expires=_utc(now) + expiry.timestamp))
        timestamp.signed.snapshot_meta = _meta_of(1, store.get_metadata("1.snapshot.json"))
        _sign_put(store, timestamp, keys.signer("timestamp"), "timestamp.json")
        store.put_metadata("1.root.json", body)
        store.put_metadata("root.json", body)
        return cls(store, keys, expiry=expiry, lock=lock)

    # -- reading ---------------------------------------------------------------------------

    def metadata(self, filename: str) -> bytes:
        """The bytes of a metadata file, as a TUF client requests it.

        Raises
        ------
        NotFoundError
            No such file.
        """
        body = self._store.get_metadata(filename)
        if body is None:
            raise NotFoundError(f"no TUF metadata file {filename!r}")
        return body

    def trusted_root(self) -> dict[str, Any]:
        """The current root metadata as a JSON object (what devices pin at enrolment)."""
        root: dict[str, Any] = json.loads(self.metadata("root.json"))
        return root

    def targets(self) -> dict[str, TargetSpec]:
        """Every target in the current targets metadata, by path."""
        return {
            path: TargetSpec(path, info.length, info.hashes["sha256"], dict(info.custom or {}))
            for path, info in self._load_targets().signed.targets.items()
        }

    def target(self, path: str) -> TargetSpec | None:
        """The target at ``path`` in the current targets metadata, or None."""
        return self.targets().get(path)

    @staticmethod
    def target_file_name(path: str, sha256: str) -> str:
        """The consistent-snapshot file name a client requests for a target.

        Examples
        --------
        >>> TufRepository.target_file_name("models/digits/r1.onnx", "ab" * 32)[:22]
        'models/digits/abababab'
        >>> TufRepository.target_file_name("a.onnx", "cd" * 32).endswith("cd.a.onnx")
        True
        """
        directory, sep, basename = path.rpartition("/")
        return f"{directory}{sep}{sha256}.{basename}"

    @staticmethod
    def split_target_file_name(name: str) -> tuple[str, str]:
        """Invert :meth:`target_file_name`: ``(target path, sha256)``.

        Raises
        ------
        NotFoundError
            ``name`` is not a consistent-snapshot target file name.
        """
        directory, sep, basename = name.rpartition("/")
        digest, dot, rest = basename.partition(".")
        if not dot or not rest or not _SHA256.match(digest):
            raise NotFoundError(f"no TUF target file {name!r}")
        return f"{directory}{sep}{rest}", digest

    # -- writing ---------------------------------------------------------------------------

    def add_target(
        self, path: str, length: int, sha256: str, custom: dict[str, Any], now: float
    ) -> None:
        """Add or replace one target, then publish new targets, snapshot and timestamp."""
        self.add_targets([TargetSpec(path, length, sha256, dict(custom))], now)

    def add_targets(self, specs: Iterable[TargetSpec], now: float) -> None:
        """Add or replace several targets in one new version of the repository.

        Use this to publish a model and its golden inputs together.
        """
        specs = list(specs)
        with self._guard():
            targets = self._load_targets()
            for spec in specs:
                targets.signed.targets[spec.path] = TargetFile(
                    spec.length, {"sha256": spec.sha256}, spec.path, {"custom": spec.custom}
                )
            self._publish(now, targets=targets)

    def refresh_timestamp(self, now: float, *, force: bool = False) -> bool:
        """Re-sign the timestamp when less than half of its lifetime is left (or ``force``).

        Returns
        -------
        bool
            Whether a new timestamp was published.
        """
        with self._guard():
            if not force and not self._due(self._load_timestamp().signed, "timestamp", now):
                return False
            self._publish(now)
            return True

    def refresh_expiring(self, now: float) -> list[str]:
        """Re-sign every online role with less than half of its lifetime left.

        The background loop calls this: without pushes, snapshot and targets expire too. A
        re-signed targets implies a new snapshot, which implies a new timestamp.

        Returns
        -------
        list of str
            The roles re-signed, e.g. ``["snapshot", "timestamp"]``; empty when none was due.
        """
        with self._guard():
            targets = self._load_targets()
            snapshot = self._load_snapshot()
            timestamp = self._load_timestamp()
            if self._due(targets.signed, "targets", now):
                self._publish(now, targets=targets)
                return ["targets", "snapshot", "timestamp"]
            if self._due(snapshot.signed, "snapshot", now):
                self._publish(now, snapshot=True)
                return ["snapshot", "timestamp"]
            if self._due(timestamp.signed, "timestamp", now):
                self._publish(now)
                return ["timestamp"]
            return []

    def renew_root(self, now: float) -> int:
        """Publish a new root version with a fresh expiry (needs the root key).

        Returns
        -------
        int
            The new root version.
        """
        signer = self._keys.signer("root")
        with self._guard():
            root = self._load_root()
            root.signed.version += 1
            root.signed.expires = _utc(now) + self._expiry.root
            root.sign(signer)
            body = root.to_bytes(_SERIALIZER)
            self._store.put_metadata(f"{root.signed.version}.root.json", body)
            self._store.put_metadata("root.json", body)
            return root.signed.version

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            if self._external_lock is None:
                yield
            else:
                with self._external_lock():
                    yield

    def _due(self, signed: Signed, role: str, now: float) -> bool:
        return signed.expires - _utc(now) < self._expiry.of(role) / 2

    def _check_keys(self, root: Root) -> None:
        for role in ONLINE_ROLES:
            if self._keys.signer(role).public_key.keyid not in root.roles[role].keyids:
                raise ConfigurationError(
                    f"the TUF {role} key loaded is not one that root metadata trusts for {role}"
                )

    def _publish(
        self, now: float, *, targets: Metadata[Targets] | None = None, snapshot: bool = False
    ) -> None:
        """Write new versions, leaves first; the timestamp (written last) makes them current."""
        self._check_keys(self._load_root().signed)
        snap = self._load_snapshot()
        if targets is not None:
            targets.signed.version += 1
            name = f"{targets.signed.version}.targets.json"
            self._sign_role(targets, "targets", name, now)
            snap.signed.meta["targets.json"] = _meta_of(
                targets.signed.version, self._store.get_metadata(name)
            )
        stamp = self._load_timestamp()
        if targets is not None or snapshot:
            snap.signed.version += 1
            name = f"{snap.signed.version}.snapshot.json"
            self._sign_role(snap, "snapshot", name, now)
            body = self._store.get_metadata(name)
            stamp.signed.snapshot_meta = _meta_of(snap.signed.version, body)
        stamp.signed.version += 1
        self._sign_role(stamp, "timestamp", "timestamp.json", now)

    def _sign_role(self, md: Metadata[Any], role: str, filename: str, now: float) -> None:
        md.signed.expires = _utc(now) + self._expiry.of(role)
        _sign_put(self._store, md, self._keys.signer(role), filename)

    def _load(self, filename: str, cls: type[Signed]) -> Metadata[Any]:
        md: Metadata[Any] = Metadata.from_bytes(self.metadata(filename))
        if not isinstance(md.signed, cls):
            raise ConfigurationError(f"stored TUF file {filename} is not {cls.type} metadata")
        return md

    def _load_root(self) -> Metadata[Root]:
        return self._load("root.json", Root)

    def _load_timestamp(self) -> Metadata[TimestampRole]:
        return self._load("timestamp.json", TimestampRole)

    def _load_snapshot(self) -> Metadata[Snapshot]:
        version = self._load_timestamp().signed.snapshot_meta.version
        return self._load(f"{version}.snapshot.json", Snapshot)

    def _load_targets(self) -> Metadata[Targets]:
        version = self._load_snapshot().signed.meta["targets.json"].version
        return self._load(f"{version}.targets.json", Targets)


def _meta_of(version: int, body: bytes | None) -> MetaFile:
    if body is None:
        raise ConfigurationError(f"metadata version {version} vanished from the store")
    return MetaFile.from_data(version, body, ["sha256"])


def _sign_put(store: MetadataStore, md: Metadata[Any], signer: Signer, filename: str) -> None:
    md.sign(signer)
    store.put_metadata(filename, md.to_bytes(_SERIALIZER))
