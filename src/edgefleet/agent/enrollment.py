"""First contact: trade the enrolment token for the device's identity and trust anchors.

Enrolment happens once. The returned TUF root and desired-state keys are pinned under
``trust/`` first, then ``credential.json`` (mode 0600) is written; its presence means the device
is enrolled, and later starts never need the token again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pydantic import ValidationError

from edgefleet.agent.backoff import Backoff
from edgefleet.agent.settings import AgentSettings
from edgefleet.agent.state import Credential
from edgefleet.agent.trust import AgentTrust
from edgefleet.agent.uplink import RefusedError, Uplink
from edgefleet.errors import AuthError, ConfigurationError, UplinkError
from edgefleet.protocol.v1 import EnrollRequest, Inventory

__all__ = ["EnrollmentRefusedError", "StoppedError", "ensure_enrolled", "stored_credential"]

log = logging.getLogger(__name__)


class EnrollmentRefusedError(AuthError, UplinkError):
    """The control plane refused the enrolment token (unknown, expired or used up) or request.

    An :class:`~edgefleet.errors.AuthError` first (its exit code is the refused token's), and
    an :class:`~edgefleet.errors.UplinkError` for what handles the uplink's failures.
    """


class StoppedError(Exception):
    """The agent was asked to stop while waiting to enrol."""


def stored_credential(settings: AgentSettings) -> Credential | None:
    """The credential from an earlier enrolment, with the server URL the settings name.

    Raises
    ------
    ConfigurationError
        The device is not enrolled and the settings lack the token or server URL to enrol.
    """
    credential = Credential.load(settings.credential_path)
    if credential is not None:
        if settings.server_url and settings.server_url != credential.server_url:
            log.warning(
                "enrolled with %s; now using %s", credential.server_url, settings.server_url
            )
            credential = credential.model_copy(update={"server_url": settings.server_url})
        return credential
    if settings.enroll_token is None:
        raise ConfigurationError(
            f"this device is not enrolled yet ({settings.credential_path} is missing): "
            "give --enroll-token (or EDGEFLEET_ENROLL_TOKEN)"
        )
    if settings.server_url is None:
        raise ConfigurationError("this device is not enrolled yet: give --server URL to enrol")
    return None


def ensure_enrolled(
    settings: AgentSettings,
    inventory: Callable[[], Inventory],
    stop: threading.Event,
    backoff: Backoff | None = None,
) -> tuple[Credential, bool]:
    """Return the device credential, enrolling first if needed; also whether it enrolled now.

    Unreachable servers and server errors are retried with jittered backoff until ``stop``
    is set (then :class:`StoppedError`).

    Raises
    ------
    EnrollmentRefusedError
        The control plane refused the token or the request (4xx).
    ConfigurationError
        Settings lack what enrolment needs, or the token is malformed.
    StoppedError
        ``stop`` was set while retrying.
    """
    credential = stored_credential(settings)
    if credential is not None:
        return credential, False
    token, server_url = settings.enroll_token, settings.server_url
    assert token is not None  # stored_credential checked both
    assert server_url is not None
    backoff = backoff or Backoff(settings.backoff_base_s, settings.backoff_max_s)
    try:
        request = EnrollRequest(
            token=token.get_secret_value(),
            labels=settings.labels,
            inventory=inventory(),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"cannot enrol: {problems}") from None
    with Uplink(
        server_url,
        ca_file=settings.ca_file,
        timeout_s=settings.request_timeout_s,
        max_request_bytes=settings.max_request_bytes,
    ) as uplink:
        while True:
            try:
                response = uplink.enroll(request)
                break
            except RefusedError as exc:
                if not exc.retryable:
                    raise EnrollmentRefusedError(
                        f"the control plane at {settings.server_url} refused the enrolment "
                        f"(HTTP {exc.status}): {exc.message}"
                    ) from exc
                error: UplinkError = exc
            except UplinkError as exc:
                error = exc
            delay = backoff.next_delay()
            log.warning("cannot enrol yet (%s); retrying in %.1f s", error, delay)
            if stop.wait(delay):
                raise StoppedError("stopped before enrolment")
    AgentTrust.bootstrap(settings.trust_dir, response.tuf_root, response.desired_state_keys)
    credential = Credential(
        device_id=response.device_id,
        credential=response.credential,
        server_url=server_url,
    )
    credential.save(settings.credential_path)
    log.info("enrolled as %s with %s", credential.device_id, settings.server_url)
    return credential, True
