"""End-to-end fixtures: every subprocess of the session runs under the network audit hook."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.netguard import guarded_env, report


@pytest.fixture(scope="session", autouse=True)
def nothing_phones_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Put every subprocess started from now on under the hook; fail if any reached out.

    The variables go into this process's environment, which every subprocess inherits (and
    :func:`edgefleet.testing.fleet.subprocess_env` keeps the hook's ``PYTHONPATH`` entry when a
    test adds its own). At the end of the session the log must be empty.
    """
    log = tmp_path_factory.mktemp("netguard") / "connections.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in guarded_env(log, os.environ.get("PYTHONPATH")).items():
            patch.setenv(name, value)
        yield log
    message = report(log)
    if message is not None:
        pytest.fail(message, pytrace=False)
