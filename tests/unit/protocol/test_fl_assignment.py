"""A federated assignment in a desired state is checked before a device acts on it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edgefleet.protocol.v1 import DesiredState, FLAssignment

GOOD: dict[str, Any] = {
    "job_id": "fl-3f2a9c01d4e5",
    "round": 2,
    "task": "digits",
    "model_hash": "0123456789abcdef",
    "num_params": 1898,
    "compression": "dgc:0.999",
    "deadline": 1_800_000_000.0,
}


def test_a_good_assignment_round_trips_inside_a_desired_state() -> None:
    state = DesiredState(
        device_id="dev-1", version=3, issued_at=0, expires_at=1, fl=FLAssignment(**GOOD)
    )
    again = DesiredState.model_validate_json(state.model_dump_json())
    assert again.fl == FLAssignment(**GOOD)
    assert (again.fl.local_epochs, again.fl.mu, again.fl.privacy) == (1, 0.0, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", "../../etc"),  # the job id names a folder on the device
        ("job_id", ""),
        ("round", 0),
        ("model_hash", "not-a-hash"),
        ("num_params", 0),
        ("local_epochs", 0),
        ("mu", -1.0),
        ("learning_rate", 0.0),
    ],
)
def test_a_bad_field_is_refused_naming_it(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        FLAssignment(**{**GOOD, field: value})
