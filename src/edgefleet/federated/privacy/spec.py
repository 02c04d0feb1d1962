"""Privacy specs: the short text that sets differential privacy for a federated job.

Grammar: ``dp:KEY=VALUE[,KEY=VALUE]...`` with the keys

=========  ========  ==================================================================
key        default   meaning
=========  ========  ==================================================================
``clip``   required  ``C``, the L2 norm each update is clipped to (> 0)
``noise``  required  ``z``, the noise multiplier: noise std is ``z * C`` (> 0)
``delta``  ``1e-5``  the ``delta`` the spent epsilon is reported at, in (0, 1); take it
                     well below 1 / number of devices
``at``     device    where the noise is added: ``device`` (local DP) or ``relay``
                     (central DP, on the aggregator that first sees the updates)
=========  ========  ==================================================================

:meth:`PrivacySpec.spec` writes the canonical text back with every key, so that a stored spec
keeps its meaning if a default changes.

Examples
--------
>>> spec = from_spec("dp:clip=1,noise=1.1")
>>> spec
PrivacySpec(clip=1.0, noise=1.1, delta=1e-05, at='device')
>>> spec.spec()
'dp:clip=1.0,noise=1.1,delta=1e-05,at=device'
>>> from_spec(spec.spec()) == spec
True
>>> spec.mechanism().noise_std
1.1
>>> try:
...     from_spec("dp:clip=1.0,noise=1.1,at=server")
... except ValueError as exc:
...     print(exc)
privacy spec 'dp:clip=1.0,noise=1.1,at=server': at must be device or relay, got 'server'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgefleet.errors import ConfigurationError
from edgefleet.federated.privacy._checks import open_unit, positive
from edgefleet.federated.privacy.gaussian import PLACEMENTS, GaussianMechanism, Placement

__all__ = ["DEFAULT_DELTA", "PrivacySpec", "PrivacySpecError", "from_spec"]

DEFAULT_DELTA = 1e-5
"""The ``delta`` a spec gets when it names none."""

_NAME = "dp"
_KEYS = ("clip", "noise", "delta", "at")
_REQUIRED = ("clip", "noise")


class PrivacySpecError(ConfigurationError, ValueError):
    """A privacy spec string such as ``"dp:clip=1.0,noise=1.1"`` is invalid."""


@dataclass(frozen=True)
class PrivacySpec:
    """Differential privacy settings of a federated job.

    Parameters
    ----------
    clip
        ``C``: each update's L2 norm is clipped to it; > 0.
    noise
        ``z``: the noise multiplier; the noise's standard deviation is ``z * C``; > 0.
    delta
        The ``delta`` at which the spent epsilon is reported, in (0, 1).
    at
        ``"device"`` or ``"relay"``: where the noise is added.

    Raises
    ------
    PrivacySpecError
        Naming the field, if a value is out of range.
    """

    clip: float
    noise: float
    delta: float = DEFAULT_DELTA
    at: Placement = "device"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "clip", positive("clip", self.clip))
            object.__setattr__(self, "noise", positive("noise", self.noise))
            object.__setattr__(self, "delta", open_unit("delta", self.delta))
        except ValueError as exc:
            raise PrivacySpecError(str(exc)) from None
        if self.at not in PLACEMENTS:
            raise PrivacySpecError(f"at must be {' or '.join(PLACEMENTS)}, got {self.at!r}")

    def spec(self) -> str:
        """The canonical spec text, every key given: ``from_spec(s.spec()) == s``."""
        return f"{_NAME}:clip={self.clip!r},noise={self.noise!r},delta={self.delta!r},at={self.at}"

    def mechanism(self) -> GaussianMechanism:
        """The Gaussian mechanism these settings describe."""
        return GaussianMechanism(clip_norm=self.clip, noise_multiplier=self.noise, at=self.at)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def from_spec(text: str) -> PrivacySpec:
    """The settings ``text`` names; :class:`PrivacySpecError` (a ``ValueError``) if it is bad."""
    name, colon, rest = text.strip().partition(":")
    name = name.strip().lower()
    example = "e.g. 'dp:clip=1.0,noise=1.1'"
    if not name:
        raise PrivacySpecError(f"privacy spec {text!r} is empty; expected {example}")
    if name != _NAME:
        raise PrivacySpecError(
            f"privacy spec {text!r}: unknown mechanism {name!r} (known: {_NAME}); "
            f"expected {example}"
        )
    values: dict[str, Any] = {}
    items = [item.strip() for item in rest.split(",")] if colon and rest.strip() else []
    for item in items:
        key, equals, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not equals or not key:
            raise PrivacySpecError(f"privacy spec {text!r}: {item!r} is not KEY=VALUE")
        if key not in _KEYS:
            raise PrivacySpecError(
                f"privacy spec {text!r}: unknown option {key!r} (known: {', '.join(_KEYS)})"
            )
        if key in values:
            raise PrivacySpecError(f"privacy spec {text!r}: option {key!r} given twice")
        if key == "at":
            values[key] = value.lower()
            continue
        try:
            values[key] = _number(value)
        except ValueError:
            raise PrivacySpecError(
                f"privacy spec {text!r}: {key}={value!r} is not a number"
            ) from None
    missing = [key for key in _REQUIRED if key not in values]
    if missing:
        raise PrivacySpecError(
            f"privacy spec {text!r}: missing {' and '.join(missing)} (required), {example}"
        )
    try:
        return PrivacySpec(**values)
    except PrivacySpecError as exc:
        raise PrivacySpecError(f"privacy spec {text!r}: {exc}") from None
