"""Real fleet processes for tests, demos and benchmarks: a control plane and agents.

Each runs as a subprocess with its own data dir.

>>> from edgefleet.testing.fleet import ServerProcess  # doctest: +SKIP
>>> with ServerProcess.start(tmp / "server") as server:  # doctest: +SKIP
...     token = server.enroll_token(labels={"region": "eu"})
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["AgentProcess", "ServerProcess", "subprocess_env"]

_URL = re.compile(r"(https?://\S+)")


def _edgefleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgefleet", *args]


def subprocess_env(
    env: dict[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (this process's environment) with ``env`` on top; ``env``'s ``PYTHONPATH`` extends.

    An inherited search path (a test harness's audit hook, for one) is kept after the given one
    rather than replaced.

    >>> env = subprocess_env({"PYTHONPATH": "/mine:/both"}, base={"PYTHONPATH": "/both:/hook"})
    >>> env["PYTHONPATH"].split(os.pathsep)
    ['/mine', '/both', '/hook']
    """
    base = os.environ if base is None else base
    full = {**base, **(env or {})}
    given, inherited = (env or {}).get("PYTHONPATH"), base.get("PYTHONPATH")
    if given is not None and inherited:
        parts = given.split(os.pathsep)
        parts += [p for p in inherited.split(os.pathsep) if p not in parts]
        full["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return full


def _wait_for_line(
    proc: subprocess.Popen[str], log: IO[str], pattern: re.Pattern[str], timeout: float
) -> str:
    """Read ``proc``'s stderr until ``pattern`` matches; every line also goes to ``log``."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        log.write(line)
        log.flush()
        seen.append(line)
        match = pattern.search(line)
        if match:
            return match.group(1)
    proc.kill()
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
    log.close()
    raise RuntimeError(f"{proc.args!r} did not start (exit {proc.poll()}):\n" + "".join(seen))


def _drain(proc: subprocess.Popen[str], log: IO[str]) -> None:
    """Copy the rest of ``proc``'s stderr to ``log`` in a thread (so its pipe never fills)."""
    import threading

    def copy() -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                log.write(line)
                log.flush()
        finally:  # the process ended: nothing more to copy
            proc.stderr.close()
            log.close()

    threading.Thread(target=copy, daemon=True).start()


def _stop(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class ServerProcess:
    """``edgefleet server`` in a subprocess, with an operator client for the test."""

    data_dir: Path
    url: str
    token: str
    proc: subprocess.Popen[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None

    @classmethod
    def init(cls, data_dir: Path, *, env: dict[str, str] | None = None) -> str:
        """Run ``edgefleet server init``; returns the operator token."""
        full_env = subprocess_env(env)
        done = subprocess.run(
            _edgefleet("server", "init", "--data-dir", str(data_dir)),
            capture_output=True,
            text=True,
            env=full_env,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"server init failed: {done.stderr}")
        return (data_dir / "operator-token").read_text().strip()

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        port: int = 0,
        extra: tuple[str, ...] = (),
        ca_file: Path | None = None,
        timeout: float = 60.0,
    ) -> ServerProcess:
        """Initialise ``data_dir`` if needed, start the server and wait until it is ready."""
        token = (
            (data_dir / "operator-token").read_text().strip()
            if (data_dir / "server.yaml").exists()
            else cls.init(data_dir, env=env)
        )
        log_path = data_dir / "server.log"
        log = log_path.open("a")
        proc = subprocess.Popen(
            _edgefleet("server", "--data-dir", str(data_dir), "--port", str(port), *extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(env),
        )
        url = _wait_for_line(proc, log, re.compile(r"edgefleet server on (\S+)"), timeout)
        _drain(proc, log)
        return cls(data_dir, url, token, proc, log_path, dict(env or {}), ca_file)

    def client(self) -> httpx.Client:
        """An operator-authenticated client for ``/api/operator/v1``."""
        return httpx.Client(
            base_url=f"{self.url}/api/operator/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True,
            timeout=120.0,
        )

    def operator(self, method: str, path: str, **kwargs: Any) -> Any:
        """One operator API call; raises on a non-2xx answer."""
        with self.client() as client:
            response = client.request(method, path, **kwargs)
        if not response.is_success:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def enroll_token(self, labels: dict[str, str] | None = None, uses: int | None = None) -> str:
        """A fresh enrolment token."""
        body = {"labels": labels or {}, "uses": uses}
        return str(self.operator("POST", "/enroll-tokens", json=body)["token"])

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        return _stop(self.proc)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same port."""
        port = int(self.url.rsplit(":", 1)[1])
        self.stop()
        again = ServerProcess.start(self.data_dir, env=self.env, port=port, timeout=timeout)
        self.proc, self.url = again.proc, again.url

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class AgentProcess:
    """``edgefleet agent`` in a subprocess with its own data dir."""

    data_dir: Path
    proc: subprocess.Popen[str]
    serve_url: str
    log_path: Path
    args: list[str]
    env: dict[str, str]

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        server: str,
        enroll_token: str | None,
        labels: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> AgentProcess:
        """Start an agent and wait until its local OIP server listens."""
        data_dir.mkdir(parents=True, exist_ok=True)
        args = ["agent", "--server", server, "--data-dir", str(data_dir), "--serve", "127.0.0.1:0"]
        if enroll_token:
            args += ["--enroll-token", enroll_token]
        if labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
        args += list(extra)
        full_env = subprocess_env(env)
        return cls._spawn(data_dir, args, full_env, timeout)

    @classmethod
    def _spawn(
        cls, data_dir: Path, args: list[str], env: dict[str, str], timeout: float
    ) -> AgentProcess:
        log_path = data_dir / "agent.log"
        log = log_path.open("a")
        proc = subprocess.Popen(
            _edgefleet(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        url = _wait_for_line(proc, log, re.compile(r"serving on (http://\S+)"), timeout)
        _drain(proc, log)
        return cls(data_dir, proc, url.rstrip("/,."), log_path, args, env)

    def restart(self, timeout: float = 60.0) -> None:
        """Start the same agent again (after :meth:`kill` or :meth:`stop`)."""
        again = AgentProcess._spawn(self.data_dir, self.args, self.env, timeout)
        self.proc, self.serve_url = again.proc, again.serve_url

    def kill(self) -> None:
        """SIGKILL, the way a power cut ends a device's process."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        return _stop(self.proc)

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
