"""The updater's test rig: a real repository, spool and state file, and a local model source."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.agent.health import HealthPolicy
from edgefleet.agent.reporter import EventLog, WindowCollector
from edgefleet.agent.spool import Spool
from edgefleet.agent.state import StateStore
from edgefleet.agent.trust import VerifiedModel
from edgefleet.agent.updater import EventCallback, Updater
from edgefleet.protocol.v1 import DesiredModel, DesiredState, UpdatePolicy
from edgefleet.runtime import ModelRepository

NAME = "scaler"
ONE = np.ones((1, 4), dtype=np.float32)
TWO_ROWS = np.ones((2, 4), dtype=np.float32)


@dataclass
class LocalSource:
    """A model source without a network: hands out files already placed in models/.

    Downloads and TUF verification are tested in test_trust.py and, through the agent, in
    test_daemon.py; here only what the updater does with a verified file matters.
    """

    models: dict[str, VerifiedModel] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)
    fail_with: Exception | None = None

    def fetch_model(
        self, desired: DesiredModel, on_event: EventCallback | None = None
    ) -> VerifiedModel:
        self.fetches.append(desired.target)
        if self.fail_with is not None:
            raise self.fail_with
        if on_event is not None:
            on_event("verified", desired.target)
        return self.models[desired.sha256]

    def accept_release(self, name: str, release: int) -> None:
        self.accepted.append((name, release))


@dataclass
class Rig:
    base: Path
    repository: ModelRepository
    spool: Spool
    updater: Updater
    source: LocalSource

    @property
    def models_dir(self) -> Path:
        return self.base / "models"

    def stage(
        self, model: bytes, release: int, *, golden_bytes: bytes | None = None, **custom: Any
    ) -> DesiredModel:
        sha = hashlib.sha256(model).hexdigest()
        path = self.models_dir / f"{sha}.onnx"
        path.write_bytes(model)
        golden_path = None
        if golden_bytes is not None:
            golden_path = self.models_dir / f"{sha}.npz"
            golden_path.write_bytes(golden_bytes)
        desired = DesiredModel(
            name=NAME,
            version=f"v{release}",
            target=f"models/{NAME}/r{release}.onnx",
            release=release,
            sha256=sha,
            length=len(model),
        )
        fields = {"release": release, "model": NAME, "opset": 17, "requirements": {}, **custom}
        self.source.models[sha] = VerifiedModel(
            path, desired.target, sha, release, fields, golden_path
        )
        return desired

    def apply(
        self, desired: DesiredModel, version: int, policy: UpdatePolicy | None = None
    ) -> bool:
        state = DesiredState(
            device_id="dev-1",
            version=version,
            issued_at=0.0,
            expires_at=1e12,
            model=desired,
            policy=policy,
        )
        return self.updater.reconcile(state, self.source)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.spool.pending(max_events=1000).events]

    def predict(self, x: np.ndarray[Any, Any] = ONE) -> np.ndarray[Any, Any]:
        return self.repository.predict(NAME, {"x": x})["y"]

    def state_file(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.base / "state.json").read_text())
        return data

    def new_updater(self, policy: HealthPolicy | None = None, **extra: Any) -> Updater:
        lock = threading.Lock()
        return Updater(
            repository=self.repository,
            store=StateStore(self.base / "state.json"),
            models_dir=self.models_dir,
            events=EventLog(self.spool, lock),
            collector=WindowCollector(self.spool, lock),
            policy=policy or self.updater.policy,
            load_options={"intra_op_threads": 1, "providers": ["CPUExecutionProvider"]},
            retry_base_s=60.0,
            retry_max_s=600.0,
            **extra,
        )


def make_rig(base: Path) -> Rig:
    """A rig in ``base`` with an updater that watches for 30 s and judges after 10 calls."""
    (base / "models").mkdir(parents=True, exist_ok=True)
    spool = Spool(base / "spool.db", budget_bytes=2**22)
    rig = Rig(base, ModelRepository(), spool, None, LocalSource())  # type: ignore[arg-type]
    rig.updater = rig.new_updater(HealthPolicy(period_s=30, min_requests=10))
    return rig


def close_rig(rig: Rig) -> None:
    """Close what :func:`make_rig` opened."""
    rig.repository.close()
    rig.spool.close()
