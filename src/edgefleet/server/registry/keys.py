"""The TUF repository's role keys and metadata lifetimes.

Four Ed25519 keys, one per top-level role, stored as unencrypted PKCS#8 PEM files readable by the
owner only. The targets, snapshot and timestamp keys are online (the server signs with them on
every push and on the timestamp loop); the root key is only needed to create or renew root
metadata and should live offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.secret_files import write_secret

__all__ = ["ONLINE_ROLES", "ExpirySettings", "RepositoryKeys"]

ONLINE_ROLES = ("targets", "snapshot", "timestamp")
"""Roles whose keys the server holds while it runs (``<role>.key`` in the keys directory)."""


@dataclass(frozen=True)
class ExpirySettings:
    """How long each role's metadata stays valid after it is signed.

    Parameters
    ----------
    root, targets, snapshot, timestamp
        Lifetimes; defaults 365, 90, 7 and 1 days. Online roles are re-signed when less than
        half of their lifetime is left.
    """

    root: timedelta = field(default_factory=lambda: timedelta(days=365))
    targets: timedelta = field(default_factory=lambda: timedelta(days=90))
    snapshot: timedelta = field(default_factory=lambda: timedelta(days=7))
    timestamp: timedelta = field(default_factory=lambda: timedelta(days=1))

    def __post_init__(self) -> None:
        for role in ("root", *ONLINE_ROLES):
            if getattr(self, role) <= timedelta(0):
                raise ConfigurationError(f"{role} metadata expiry must be positive")

    def of(self, role: str) -> timedelta:
        """The lifetime of ``role``'s metadata."""
        value: timedelta = getattr(self, role)
        return value


def _read_key(path: Path, role: str) -> CryptoSigner:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"the TUF {role} key {path} does not exist") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the TUF {role} key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"the TUF {role} key {path} is not an Ed25519 key")
    return CryptoSigner(key)


@dataclass(frozen=True)
class RepositoryKeys:
    """Signers for the four top-level TUF roles.

    Parameters
    ----------
    targets, snapshot, timestamp
        Online signers.
    root
        The root signer, or None when the root key is kept offline.
    """

    targets: CryptoSigner
    snapshot: CryptoSigner
    timestamp: CryptoSigner
    root: CryptoSigner | None = None

    @classmethod
    def generate(cls, keys_dir: Path, root_key_path: Path) -> RepositoryKeys:
        """Create four new keys: ``keys_dir/<role>.key`` for the online roles, and the root key.

        Parameters
        ----------
        keys_dir
            Directory for the online keys (created when missing).
        root_key_path
            Where the root key goes (ideally removable media, moved offline afterwards).

        Raises
        ------
        ConfigurationError
            A key file already exists (nothing is overwritten).
        """
        keys_dir = Path(keys_dir)
        paths = [keys_dir / f"{role}.key" for role in ONLINE_ROLES] + [Path(root_key_path)]
        for path in paths:
            if path.exists():
                raise ConfigurationError(f"key file {path} exists; refusing to overwrite it")
        targets, snapshot, timestamp, root = (CryptoSigner.generate_ed25519() for _ in paths)
        for path, signer in zip(paths, (targets, snapshot, timestamp, root), strict=True):
            write_secret(path, signer.private_bytes, "key file")
        return cls(targets=targets, snapshot=snapshot, timestamp=timestamp, root=root)

    @classmethod
    def load(cls, keys_dir: Path, root_key_path: Path | None = None) -> RepositoryKeys:
        """Read the online keys from ``keys_dir`` and, when given, the root key.

        Raises
        ------
        ConfigurationError
            A key is missing, unreadable or not Ed25519.
        """
        keys_dir = Path(keys_dir)
        return cls(
            targets=_read_key(keys_dir / "targets.key", "targets"),
            snapshot=_read_key(keys_dir / "snapshot.key", "snapshot"),
            timestamp=_read_key(keys_dir / "timestamp.key", "timestamp"),
            root=None if root_key_path is None else _read_key(Path(root_key_path), "root"),
        )

    @staticmethod
    def root_key_online(keys_dir: Path) -> bool:
        """Whether the root key sits next to the online keys (``keys_dir/root.key``).

        The server warns on every start when it does: whoever steals the server also gets the
        key that decides which keys devices trust.
        """
        return (Path(keys_dir) / "root.key").exists()

    def signer(self, role: str) -> CryptoSigner:
        """The signer of an online role, or of root.

        Raises
        ------
        ConfigurationError
            ``role`` is root and the root key was not loaded.
        """
        signer: CryptoSigner | None = getattr(self, role)
        if signer is None:
            raise ConfigurationError(
                f"the TUF {role} key is needed for this operation but was not loaded"
            )
        return signer
