"""Privacy specs: the config text, its canonical form, and errors that name the bad part."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgefleet.federated as fl
from edgefleet.errors import ConfigurationError
from edgefleet.federated import privacy
from edgefleet.federated.privacy.gaussian import GaussianMechanism
from edgefleet.federated.privacy.spec import PrivacySpec, PrivacySpecError, from_spec

CANONICAL = {
    "dp:clip=1.0,noise=1.1": "dp:clip=1.0,noise=1.1,delta=1e-05,at=device",
    "dp:clip=1,noise=1.1,delta=1e-5,at=device": "dp:clip=1.0,noise=1.1,delta=1e-05,at=device",
    " DP : clip = 0.5 , noise=2 , AT = Relay ": "dp:clip=0.5,noise=2.0,delta=1e-05,at=relay",
    "dp:noise=0.8,at=relay,delta=1e-6,clip=2": "dp:clip=2.0,noise=0.8,delta=1e-06,at=relay",
}


def test_specs_have_a_canonical_form_that_round_trips() -> None:
    for text, canonical in CANONICAL.items():
        spec = from_spec(text)
        assert spec.spec() == canonical, text
        assert from_spec(canonical) == spec
        assert from_spec(canonical).spec() == canonical


def test_defaults_are_delta_1e_5_on_the_device() -> None:
    spec = from_spec("dp:clip=1.0,noise=1.1")
    assert spec == PrivacySpec(clip=1.0, noise=1.1, delta=1e-5, at="device")


@given(
    st.floats(1e-9, 1e9),
    st.floats(1e-9, 1e9),
    st.floats(1e-12, 1.0, exclude_max=True),
    st.sampled_from(["device", "relay"]),
)
def test_every_valid_spec_round_trips(clip: float, noise: float, delta: float, at: str) -> None:
    spec = PrivacySpec(clip=clip, noise=noise, delta=delta, at=at)  # type: ignore[arg-type]
    assert from_spec(spec.spec()) == spec


def test_a_spec_gives_its_mechanism() -> None:
    spec = from_spec("dp:clip=0.5,noise=1.2,at=relay")
    assert spec.mechanism() == GaussianMechanism(clip_norm=0.5, noise_multiplier=1.2, at="relay")
    assert spec.mechanism().noise_std == pytest.approx(0.6)


def test_a_spec_is_frozen() -> None:
    spec = from_spec("dp:clip=1.0,noise=1.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.clip = 2.0  # type: ignore[misc]


def test_spec_errors_are_configuration_errors_and_value_errors() -> None:
    assert issubclass(PrivacySpecError, ConfigurationError)
    assert issubclass(PrivacySpecError, ValueError)
    assert PrivacySpecError.code == "config.invalid"


BAD = {
    "": "privacy spec '' is empty",
    "dp": r"missing clip and noise \(required\), e.g. 'dp:clip=1.0,noise=1.1'",
    "dp:": "missing clip and noise",
    "dp:clip=1.0": r"'dp:clip=1.0': missing noise \(required\)",
    "dp:noise=1.1": r"'dp:noise=1.1': missing clip \(required\)",
    "ldp:clip=1,noise=1": r"unknown mechanism 'ldp' \(known: dp\)",
    "dp:clip=1,noise=1,sigma=2": r"unknown option 'sigma' \(known: clip, noise, delta, at\)",
    "dp:clip=1,noise=1,clip=2": "option 'clip' given twice",
    "dp:clip=1,noise=1,1e-5": "'1e-5' is not KEY=VALUE",
    "dp:clip=1,,noise=1": "'' is not KEY=VALUE",
    "dp:clip=1,=2,noise=1": "'=2' is not KEY=VALUE",
    "dp:clip=abc,noise=1": "clip='abc' is not a number",
    "dp:clip=1,noise=nan": "noise='nan' is not a number",
    "dp:clip=inf,noise=1": "clip='inf' is not a number",
    "dp:clip=0,noise=1": "clip must be > 0, got 0.0",
    "dp:clip=1,noise=-1": "noise must be > 0, got -1.0",
    "dp:clip=1,noise=1,delta=1": r"delta must be in \(0, 1\), got 1.0",
    "dp:clip=1,noise=1,delta=0": r"delta must be in \(0, 1\), got 0.0",
    "dp:clip=1,noise=1,at=server": "at must be device or relay, got 'server'",
    "dp:clip=1,noise=1,at=": "at must be device or relay, got ''",
}


@pytest.mark.parametrize(("text", "message"), list(BAD.items()))
def test_bad_specs_are_refused_naming_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(PrivacySpecError, match=message) as caught:
        from_spec(text)
    assert f"privacy spec {text!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip": 0.0, "noise": 1.0}, "clip must be > 0"),
        ({"clip": 1.0, "noise": True}, "noise must be a number, got True"),
        ({"clip": 1.0, "noise": 1.0, "delta": 1e-20 - 1}, r"delta must be in \(0, 1\)"),
        ({"clip": 1.0, "noise": 1.0, "at": "everywhere"}, "at must be device or relay"),
    ],
)
def test_bad_settings_are_refused_when_built_directly(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(PrivacySpecError, match=message):
        PrivacySpec(**kwargs)  # type: ignore[arg-type]


def test_the_federated_package_exports_the_privacy_api() -> None:
    assert fl.privacy_from_spec is from_spec
    assert fl.PrivacySpec is PrivacySpec
    for name in ("GaussianMechanism", "PrivacyAccountant", "private_mean", "privatize_update"):
        assert getattr(fl, name) is getattr(privacy, name)
        assert name in fl.__all__
