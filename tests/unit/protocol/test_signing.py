from __future__ import annotations

import random
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import ConfigurationError, ExpiredError, VerificationError
from edgefleet.protocol.signing import (
    SigningKey,
    canonical_json,
    keyid_of,
    sign_desired_state,
    verify_desired_state,
)
from edgefleet.protocol.v1 import DesiredModel, DesiredState, Signature, SignedDesiredState

NOW = 1_800_000_000.0


def _state(
    version: int = 5, device_id: str = "dev-1", expires_at: float = NOW + 3600
) -> DesiredState:
    model = DesiredModel(
        name="digits",
        version="2",
        target="models/digits/r2.onnx",
        release=2,
        sha256="ab" * 32,
        length=1234,
    )
    return DesiredState(
        device_id=device_id, version=version, issued_at=NOW - 10, expires_at=expires_at, model=model
    )


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _verify(signed: SignedDesiredState, keys: dict[str, str], **kw: Any) -> DesiredState:
    args: dict[str, Any] = {"device_id": "dev-1", "last_version": 0, "now": NOW, **kw}
    return verify_desired_state(signed, keys, **args)


def test_sign_and_verify_round_trip(key: SigningKey) -> None:
    state = _state()
    signed = sign_desired_state(state, key)
    assert [s.keyid for s in signed.signatures] == [key.keyid]
    assert _verify(signed, key.public_keys()) == state


def test_round_trip_through_the_wire_encoding(key: SigningKey) -> None:
    signed = sign_desired_state(_state(), key)
    received = SignedDesiredState.model_validate_json(signed.model_dump_json())
    assert _verify(received, key.public_keys()).model == _state().model


def test_tampered_payload_is_refused(key: SigningKey) -> None:
    signed = sign_desired_state(_state(), key)
    assert signed.signed.model is not None
    evil_model = signed.signed.model.model_copy(update={"sha256": "cd" * 32})
    tampered = SignedDesiredState(
        signed=signed.signed.model_copy(update={"model": evil_model}),
        signatures=signed.signatures,
    )
    with pytest.raises(VerificationError, match="bad signature"):
        _verify(tampered, key.public_keys())


def test_wrong_key_is_refused(key: SigningKey) -> None:
    other = SigningKey.generate()
    signed = sign_desired_state(_state(), other)
    with pytest.raises(VerificationError, match="unknown key"):
        _verify(signed, key.public_keys())


def test_signature_from_another_key_under_a_trusted_keyid_is_refused(key: SigningKey) -> None:
    other = SigningKey.generate()
    forged = sign_desired_state(_state(), other)
    relabelled = SignedDesiredState(
        signed=forged.signed,
        signatures=[Signature(keyid=key.keyid, sig=forged.signatures[0].sig)],
    )
    with pytest.raises(VerificationError, match="bad signature"):
        _verify(relabelled, key.public_keys())


def test_unsigned_state_is_refused(key: SigningKey) -> None:
    with pytest.raises(VerificationError, match="unsigned"):
        _verify(SignedDesiredState(signed=_state(), signatures=[]), key.public_keys())


def test_garbage_signature_is_refused(key: SigningKey) -> None:
    signed = SignedDesiredState(
        signed=_state(), signatures=[Signature(keyid=key.keyid, sig="not hex")]
    )
    with pytest.raises(VerificationError, match="bad signature"):
        _verify(signed, key.public_keys())


def test_state_for_another_device_is_refused(key: SigningKey) -> None:
    signed = sign_desired_state(_state(device_id="dev-2"), key)
    with pytest.raises(VerificationError, match="dev-2"):
        _verify(signed, key.public_keys())


def test_expired_state_is_refused(key: SigningKey) -> None:
    signed = sign_desired_state(_state(expires_at=NOW), key)
    with pytest.raises(ExpiredError, match="expired"):
        _verify(signed, key.public_keys())


def test_replayed_older_version_is_refused(key: SigningKey) -> None:
    signed = sign_desired_state(_state(version=3), key)
    with pytest.raises(VerificationError, match=r"replayed desired state version 3 < 5"):
        _verify(signed, key.public_keys(), last_version=5)


def test_same_version_is_accepted_again(key: SigningKey) -> None:
    signed = sign_desired_state(_state(version=5), key)
    assert _verify(signed, key.public_keys(), last_version=5).version == 5


def test_key_saved_owner_only_and_loaded_back(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "keys" / "director.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = SigningKey.load(path)
    assert (loaded.keyid, loaded.public_hex) == (key.keyid, key.public_hex)
    assert loaded.keyid == keyid_of(loaded.public_hex)
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        SigningKey.generate().save(path)


def test_load_refuses_missing_or_malformed_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        SigningKey.load(tmp_path / "absent.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(ConfigurationError, match="cannot read"):
        SigningKey.load(tmp_path / "bad.key")


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"x": float("nan")})


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=6), _json_values, max_size=8), st.randoms())
def test_canonical_json_is_stable_under_key_order(obj: dict[str, Any], rnd: random.Random) -> None:
    items = list(obj.items())
    rnd.shuffle(items)
    assert canonical_json(dict(items)) == canonical_json(obj)


@given(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=6), st.randoms())
def test_signature_verifies_whatever_the_label_order(
    labels: dict[str, str], rnd: random.Random
) -> None:
    key = SigningKey.generate()
    payload = canonical_json({"device": "d", "labels": labels})
    signature = key.sign(payload)
    items = list(labels.items())
    rnd.shuffle(items)
    shuffled = canonical_json({"labels": dict(items), "device": "d"})
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_hex))
    public.verify(bytes.fromhex(signature.sig), shuffled)
