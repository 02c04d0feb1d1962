"""Differential privacy for federated updates: the Gaussian mechanism and its accountant.

==============================  ==================================================================
:class:`GaussianMechanism`      clip norm ``C``, noise multiplier ``z`` and where the noise goes
:func:`clip_update`             scale an update to L2 norm at most ``C``
:func:`privatize_update`        device placement: clip, then add ``N(0, (z*C)**2)`` per value
:func:`private_mean`            relay placement: clip each, sum, noise the sum once, divide by n
:class:`PrivacyAccountant`      the epsilon spent after the rounds done (Renyi DP, via
                                ``dp-accounting``), persisted as JSON
:class:`PrivacySpec`            the settings, parsed from ``dp:clip=1.0,noise=1.1``
==============================  ==================================================================

The accountant needs the ``privacy`` extra (``pip install 'edgefleet[privacy]'``); the
mechanism needs numpy only.

Examples
--------
>>> import numpy as np
>>> spec = from_spec("dp:clip=0.5,noise=1.0,at=relay")
>>> updates = [np.ones(1000, np.float32) for _ in range(20)]
>>> mean, clipped = private_mean(updates, spec.mechanism(), np.random.default_rng(7))
>>> clipped
20
>>> accountant = PrivacyAccountant()
>>> accountant.record(sampling_rate(20, 2000), spec.noise)
>>> accountant.epsilon(spec.delta) > 0
True
"""

from __future__ import annotations

from edgefleet.federated.privacy.accountant import (
    PrivacyAccountant,
    epsilon_after,
    require_dp_accounting,
    sampling_rate,
)
from edgefleet.federated.privacy.gaussian import (
    PLACEMENTS,
    GaussianMechanism,
    Placement,
    clip_update,
    l2_norm,
    private_mean,
    privatize_update,
)
from edgefleet.federated.privacy.spec import (
    DEFAULT_DELTA,
    PrivacySpec,
    PrivacySpecError,
    from_spec,
)

__all__ = [
    "DEFAULT_DELTA",
    "PLACEMENTS",
    "GaussianMechanism",
    "Placement",
    "PrivacyAccountant",
    "PrivacySpec",
    "PrivacySpecError",
    "clip_update",
    "epsilon_after",
    "from_spec",
    "l2_norm",
    "private_mean",
    "privatize_update",
    "require_dp_accounting",
    "sampling_rate",
]
