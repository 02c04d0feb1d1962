"""Builders of the rows the contract tests store."""

from __future__ import annotations

from typing import Any

from edgefleet.server.store import DeviceRow, ModelVersionRow, Store

NOW = 1_800_000_000.0
"""A fixed clock: every test passes its own ``now``."""


def sha(char: str) -> str:
    """A fake SHA-256 hex digest made of one repeated character."""
    return char * 64


def enrol(
    store: Store, device_id: str = "dev-1", labels: dict[str, str] | None = None
) -> DeviceRow:
    return store.create_device(
        device_id, f"cred-{device_id}", labels or {}, {"arch": "x86_64"}, NOW
    )


def push(
    store: Store, name: str = "digits", version: str = "1", sha256: str = sha("a"), at: float = NOW
) -> ModelVersionRow:
    row, _ = store.add_model_version(
        name=name,
        version=version,
        sha256=sha256,
        size_bytes=1234,
        opset=17,
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 64]}],
        outputs=[{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}],
        memory_estimate_bytes=10_000,
        golden_sha256=sha("g"),
        calibration={"temperature": 1.5},
        metadata={"producer": "tests"},
        created_at=at,
    )
    return row


def release(store: Store, name: str = "digits", version: str = "1") -> int:
    row = store.add_release(
        name, version, f"models/{name}/r.onnx", sha("a"), 1234, {"model": name}, NOW
    )
    return row.release


def event(event_id: str, at: float = NOW, kind: str = "verified", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "at": at, "kind": kind, **extra}


def window(
    window_id: str, started_at: float = NOW, model: str = "digits", version: str = "1"
) -> dict[str, Any]:
    return {
        "window_id": window_id,
        "model": model,
        "version": version,
        "started_at": started_at,
        "ended_at": started_at + 60,
        "snapshot": {"count": 10, "latency": {"p99": 0.004}},
        "swaps": 0,
        "rollbacks": 0,
    }
