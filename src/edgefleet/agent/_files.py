"""Atomic file writes: a reader sees the old content or the new, never a mix or nothing."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "read_json", "remove_temporaries", "write_atomic", "write_json_atomic"]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically and durably, with permission bits ``mode``.

    The bytes go to a temporary file in the same directory, created with ``mode`` (so a secret
    is never readable by others, not even briefly), which is fsynced and renamed over ``path``;
    the directory is fsynced so the rename survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, payload: Any, *, mode: int = 0o644) -> None:
    """Write ``payload`` as indented JSON with :func:`write_atomic`."""
    write_atomic(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), mode=mode)


def read_json(path: Path) -> Any:
    """Read a JSON file; raises ``OSError`` or ``ValueError`` (with the path) on failure."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def remove_temporaries(path: Path) -> list[Path]:
    """Delete temporaries a killed :func:`write_atomic` of ``path`` left behind; return them."""
    removed = []
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed.append(stale)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (quietly skipped where unsupported)."""
    with contextlib.suppress(OSError):  # some file systems refuse to open directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
