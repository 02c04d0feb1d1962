"""Fixtures of the agent tests: TUF repository keys and a loopback device API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.server.registry.keys import RepositoryKeys
from tests.unit.agent.loopback import LoopbackControlPlane
from tests.unit.agent.rig import Rig, close_rig, make_rig


@pytest.fixture(autouse=True)
def _no_edgefleet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent settings read EDGEFLEET_* variables; the developer's must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("EDGEFLEET_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def repository_keys(tmp_path_factory: pytest.TempPathFactory) -> RepositoryKeys:
    base = tmp_path_factory.mktemp("agent-repo-keys")
    return RepositoryKeys.generate(base / "keys", base / "root.key")


@pytest.fixture
def control_plane(repository_keys: RepositoryKeys) -> Iterator[LoopbackControlPlane]:
    with LoopbackControlPlane(repository_keys) as plane:
        yield plane


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "agent"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path)
    yield made
    close_rig(made)
