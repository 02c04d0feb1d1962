"""Signed desired states: canonical JSON and Ed25519 signatures (Uptane's director, simplified).

The control plane signs every :class:`~edgefleet.protocol.v1.DesiredState` with its director key;
the agent checks the signature against the keys it received at enrolment, the device id, the
expiry and the version before it acts on the state. Only :mod:`cryptography` is needed, so both
sides use this module.

>>> key = SigningKey.generate()
>>> state = DesiredState(device_id="d1", version=3, issued_at=0.0, expires_at=100.0)
>>> signed = sign_desired_state(state, key)
>>> verify_desired_state(
...     signed, key.public_keys(), device_id="d1", last_version=2, now=50.0
... ).version
3
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from edgefleet.errors import ConfigurationError, ExpiredError, VerificationError
from edgefleet.protocol.secret_files import write_secret
from edgefleet.protocol.v1 import DesiredState, Signature, SignedDesiredState

__all__ = [
    "SigningKey",
    "canonical_json",
    "keyid_of",
    "sign_desired_state",
    "verify_desired_state",
]


def canonical_json(obj: Any) -> bytes:
    r"""The canonical JSON encoding of ``obj``: sorted keys, no spaces, UTF-8.

    Two objects that are equal as JSON values encode to the same bytes, whatever the order in
    which their keys were inserted, so signatures over this encoding are stable.

    Parameters
    ----------
    obj
        A JSON value (dicts with string keys, lists, strings, numbers, booleans, None).

    Returns
    -------
    bytes
        The encoding. NaN and infinity are refused with :class:`ValueError`.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [True, None, "é"]})
    b'{"a":[true,null,"\xc3\xa9"],"b":1}'
    """
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def keyid_of(public_hex: str) -> str:
    """The key id of an Ed25519 public key: SHA-256 of its 32 raw bytes, hex.

    Parameters
    ----------
    public_hex
        The raw public key, hex.

    Returns
    -------
    str
        64 hex digits.
    """
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()


class SigningKey:
    """An Ed25519 private key that signs desired states (the server's director key).

    Parameters
    ----------
    private_key
        The key. Use :meth:`generate` or :meth:`load` to make one.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._public_hex = raw.hex()
        self._keyid = keyid_of(self._public_hex)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a PEM (PKCS#8, unencrypted) Ed25519 private key from ``path``.

        Raises
        ------
        ConfigurationError
            The file is missing, unreadable, or not an Ed25519 private key.
        """
        try:
            key = load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot read signing key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"signing key {path} is not an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key to ``path`` as PEM (PKCS#8), readable by the owner only (0600).

        Refuses to overwrite an existing file (:class:`ConfigurationError`): losing a key that
        devices trust would strand them.
        """
        pem = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        write_secret(Path(path), pem, "key file")

    @property
    def public_hex(self) -> str:
        """The raw public key, hex (64 digits)."""
        return self._public_hex

    @property
    def keyid(self) -> str:
        """SHA-256 of the raw public key, hex."""
        return self._keyid

    def public_keys(self) -> dict[str, str]:
        """``{keyid: public_hex}``, the form devices receive at enrolment."""
        return {self._keyid: self._public_hex}

    def sign(self, payload: bytes) -> Signature:
        """Sign ``payload`` and return the signature with this key's id."""
        return Signature(keyid=self._keyid, sig=self._key.sign(payload).hex())


def _payload(state: DesiredState) -> bytes:
    return canonical_json(state.model_dump(mode="json"))


def sign_desired_state(state: DesiredState, key: SigningKey) -> SignedDesiredState:
    """Sign ``state`` with ``key`` (Ed25519 over its canonical JSON).

    Parameters
    ----------
    state
        The desired state of one device.
    key
        The director key.

    Returns
    -------
    SignedDesiredState
        ``state`` with one signature.
    """
    return SignedDesiredState(signed=state, signatures=[key.sign(_payload(state))])


def _check_signature(signed: SignedDesiredState, keys: dict[str, str]) -> None:
    if not signed.signatures:
        raise VerificationError("desired state is unsigned")
    payload = _payload(signed.signed)
    bad: list[str] = []
    for signature in signed.signatures:
        public_hex = keys.get(signature.keyid)
        if public_hex is None:
            continue
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
            public.verify(bytes.fromhex(signature.sig), payload)
        except (InvalidSignature, ValueError):
            bad.append(signature.keyid[:12])
            continue
        return
    if bad:
        raise VerificationError(f"desired state has a bad signature from key {', '.join(bad)}")
    unknown = ", ".join(s.keyid[:12] for s in signed.signatures)
    raise VerificationError(f"desired state is signed by unknown key {unknown}")


def verify_desired_state(
    signed: SignedDesiredState,
    keys: dict[str, str],
    *,
    device_id: str,
    last_version: int,
    now: float,
) -> DesiredState:
    """Check a signed desired state and return it when it may be acted on.

    Parameters
    ----------
    signed
        The state as received from the control plane.
    keys
        Trusted director keys, ``{keyid: public_hex}`` (from enrolment).
    device_id
        This device's id; a state for another device is refused.
    last_version
        The highest version accepted before. An older version is a replay and refused; the
        same version is accepted (the same state fetched again).
    now
        The current time (Unix seconds).

    Returns
    -------
    DesiredState
        The verified state.

    Raises
    ------
    VerificationError
        Unsigned, signed by no trusted key, badly signed, for another device, or replayed.
    ExpiredError
        ``expires_at <= now``.
    """
    _check_signature(signed, keys)
    state = signed.signed
    if state.device_id != device_id:
        raise VerificationError(
            f"desired state is for device {state.device_id!r}, not this device ({device_id!r})"
        )
    if state.expires_at <= now:
        raise ExpiredError(
            f"desired state version {state.version} expired at {state.expires_at:.0f} "
            f"(now {now:.0f})"
        )
    if state.version < last_version:
        raise VerificationError(f"replayed desired state version {state.version} < {last_version}")
    return state
