"""Writing secrets (keys, tokens) to new files that only their owner can read."""

from __future__ import annotations

import os
from pathlib import Path

from edgefleet.errors import ConfigurationError

__all__ = ["write_secret"]


def write_secret(path: Path, data: bytes | str, what: str = "secret file") -> None:
    """Create ``path`` with mode 0600, write ``data`` and fsync it.

    Raises
    ------
    ConfigurationError
        ``path`` exists: it is never overwritten, since losing a key or token that devices or
        operators rely on would strand them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigurationError(f"{what} {path} exists; refusing to overwrite it") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
        out.flush()
        os.fsync(out.fileno())
