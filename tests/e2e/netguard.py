"""Nothing phones home: the end-to-end tests' subprocesses run under a network audit hook.

:func:`guarded_env` is the environment that makes a Python subprocess load
``tests/netguard/sitecustomize.py``, which records every connection and name lookup off this
machine to a log; :func:`report` turns that log into the message that fails the run. The
session fixture in ``tests/conftest.py`` puts the environment into ``os.environ`` for the
whole session, so every subprocess the tests start inherits it, and checks the log at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["GUARD_DIR", "LOG_VARIABLE", "guarded_env", "report"]

GUARD_DIR = Path(__file__).resolve().parents[1] / "netguard"
LOG_VARIABLE = "NETGUARD_LOG"


def guarded_env(log: Path, pythonpath: str | None = None) -> dict[str, str]:
    """The variables that put a subprocess under the network audit hook, recording to ``log``.

    ``pythonpath`` is the search path to keep (after the hook's directory).

    >>> env = guarded_env(Path("/tmp/net.log"), "/opt/lib")
    >>> env["NETGUARD_LOG"], env["PYTHONPATH"].endswith(os.pathsep + "/opt/lib")
    ('/tmp/net.log', True)
    """
    path = os.pathsep.join(p for p in (str(GUARD_DIR), pythonpath) if p)
    return {LOG_VARIABLE: str(log), "PYTHONPATH": path}


def report(log: Path) -> str | None:
    """What the log recorded, as a failure message naming each process, destination and stack.

    None when nothing was recorded (or the log was never created).
    """
    if not log.exists() or not log.read_text().strip():
        return None
    lines = ["subprocesses reached beyond this machine (only loopback is allowed):"]
    for raw in log.read_text().splitlines():
        entry = json.loads(raw)
        command = " ".join(entry["argv"]) or "python"
        lines.append(f"- pid {entry['pid']} ({command}): {entry['event']} {entry['destination']}")
        lines.extend(
            "    " + frame.rstrip().replace("\n", "\n    ") for frame in entry["stack"][-4:]
        )
    return "\n".join(lines)
