"""A migrated SQLite store of the test's own, with devices enrolled on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.server.store import Store, open_store

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A new, migrated SQLite store."""
    with open_store(f"sqlite:///{tmp_path / 'edgefleet.db'}") as opened:
        opened.migrate()
        yield opened


def enrol(store: Store, device_id: str) -> None:
    """Enrol ``device_id`` with a credential hash derived from it."""
    store.create_device(device_id, f"cred-{device_id}", {}, {"arch": "x86_64"}, NOW)
