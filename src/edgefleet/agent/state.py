"""The agent's local files: ``credential.json``, ``state.json`` and the run marker.

Every file is written atomically (temporary file, fsync, rename), so a crash or power cut leaves
the old content or the new one. ``state.json`` only ever names model files that passed
verification, compatibility and smoke tests, so a restart can load its active model at once.

>>> import tempfile
>>> from pathlib import Path
>>> store = StateStore(Path(tempfile.mkdtemp()) / "state.json")
>>> store.load().active is None
True
>>> record = ModelRecord(name="digits", version="2", release=3, sha256="ab", path="/m/ab.onnx")
>>> store.save(AgentState(active=record, desired_version=7))
>>> store.load().active.version
'2'
"""

from __future__ import annotations

import logging
import os
import random
import stat
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefleet.agent._files import read_json, write_json_atomic
from edgefleet.errors import ConfigurationError

__all__ = [
    "AgentState",
    "Credential",
    "FailureRecord",
    "ModelRecord",
    "RunMarker",
    "StateStore",
]

log = logging.getLogger(__name__)

MAX_FAILURES = 16


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRecord(_Record):
    """A verified model file on this device and what it is."""

    name: str = Field(description="Serving name (the registry's model name).")
    version: str
    release: int = Field(ge=0)
    sha256: str
    path: str = Field(description="Absolute path of the verified file under models/.")
    temperature: float | None = Field(
        default=None,
        description="Calibration temperature from the release (confidence telemetry), if any.",
    )


class FailureRecord(_Record):
    """A desired model that failed here, and when it may be tried again."""

    attempts: int = Field(ge=1)
    retry_at: float = Field(description="Unix time before which it is not tried again.")
    reason: str = ""

    @classmethod
    def after(
        cls,
        before: FailureRecord | None,
        reason: str,
        *,
        now: float,
        base: float,
        cap: float,
        rng: random.Random,
    ) -> FailureRecord:
        """The record after one more failure: wait ``base * 2**(n-1)`` capped, jittered by half.

        >>> FailureRecord.after(None, "x", now=0, base=60, cap=300, rng=random.Random(1)).attempts
        1
        """
        attempts = before.attempts + 1 if before is not None else 1
        ceiling = min(cap, base * 2.0 ** min(attempts - 1, 32))
        delay = rng.uniform(ceiling / 2, ceiling)
        return cls(attempts=attempts, retry_at=now + delay, reason=reason)


class AgentState(_Record):
    """What the agent serves and what it remembers across restarts."""

    active: ModelRecord | None = None
    previous: ModelRecord | None = Field(
        default=None, description="The last good model before the active one; kept for rollback."
    )
    desired_version: int = Field(default=0, ge=0, description="Last desired-state version seen.")
    watching_since: float | None = Field(
        default=None, description="Unix time the active model's health watch began, while it runs."
    )
    failures: dict[str, FailureRecord] = Field(
        default_factory=dict, description="Failed installs by '<desired version>:<sha256>'."
    )

    def with_failure(self, key: str, record: FailureRecord) -> AgentState:
        """A copy remembering ``record`` under ``key`` (only the newest few are kept)."""
        failures = {k: v for k, v in self.failures.items() if k != key}
        failures[key] = record
        newest = sorted(failures.items(), key=lambda kv: kv[1].retry_at)[-MAX_FAILURES:]
        return self.model_copy(update={"failures": dict(newest)})


class StateStore:
    """Reads and atomically writes ``state.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> AgentState:
        """The stored state; an empty one if there is none.

        A file that cannot be parsed is moved aside (``state.json.corrupt-<time>``) with an
        error in the log, and an empty state is returned: the agent then serves nothing until
        its desired state arrives, instead of refusing to start.
        """
        if not self.path.exists():
            return AgentState()
        try:
            return AgentState.model_validate(read_json(self.path))
        except (OSError, ValueError, ValidationError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("cannot read %s (%s); moved it to %s", self.path, exc, aside)
            os.replace(self.path, aside)
            return AgentState()

    def save(self, state: AgentState) -> None:
        """Write ``state`` atomically."""
        write_json_atomic(self.path, state.model_dump(mode="json"))


class Credential(_Record):
    """The device's identity, returned once by the control plane at enrolment."""

    device_id: str
    credential: str = Field(repr=False)
    server_url: str

    def save(self, path: Path) -> None:
        """Write the credential atomically with mode 0600 (owner only)."""
        write_json_atomic(path, self.model_dump(mode="json"), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> Credential | None:
        """The stored credential, or ``None`` when the device has not enrolled yet.

        Raises
        ------
        ConfigurationError
            The file exists but is unreadable or malformed.
        """
        if not path.exists():
            return None
        try:
            credential = cls.model_validate(read_json(path))
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigurationError(f"cannot read the device credential {path}: {exc}") from exc
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("%s is readable by other users; restricting it to mode 0600", path)
            path.chmod(0o600)
        return credential


class RunMarker:
    """A file present while the agent runs, so the next start knows whether this one crashed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self) -> bool:
        """Mark the agent as running; return whether the previous run ended without :meth:`end`."""
        crashed = self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n", encoding="ascii")
        return crashed

    def end(self) -> None:
        """Mark a clean stop."""
        self.path.unlink(missing_ok=True)
