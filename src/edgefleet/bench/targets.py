"""What a benchmark measures: the local runtime, `edgefleet serve` or a remote endpoint.

Remote means any Open Inference Protocol endpoint, optionally behind the network emulation
proxy.

Every target is prepared with the query set before timing starts (request bodies are encoded
once, as a load generator's query library is loaded once) and hands out one session per load
thread, because HTTP connections are not shared between threads.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from numpy.typing import NDArray

from edgefleet.bench.netem import Emulation, NetemProxy
from edgefleet.bench.queries import QuerySet
from edgefleet.errors import TargetError
from edgefleet.runtime import Model, Pipeline, TensorSpec
from edgefleet.runtime.oip.client import OIPClient, OIPError, encode_request
from edgefleet.runtime.oip.codec import decode_response_outputs

__all__ = [
    "LocalTarget",
    "ManagedTarget",
    "RemoteTarget",
    "Session",
    "Target",
    "serve_command",
    "serve_locally",
]

Outputs = dict[str, NDArray[Any]]
log = logging.getLogger(__name__)


class Session(Protocol):
    """One load thread's handle on a target."""

    def run(self, index: int) -> Outputs:
        """Send sample ``index`` of the prepared query set and return the outputs."""
        ...

    def close(self) -> None:
        """Release the session's connection."""
        ...


class Target(Protocol):
    """A measured endpoint, as the report names and describes it."""

    @property
    def name(self) -> str:
        """``edge``, ``loopback`` or ``cloud``."""
        ...

    @property
    def kind(self) -> str:
        """``in-process``, ``loopback``, ``remote`` or ``emulated``."""
        ...

    @property
    def url(self) -> str | None:
        """The endpoint's base URL, for HTTP targets."""
        ...

    @property
    def format(self) -> str:
        """``in-process``, ``json`` or ``binary``."""
        ...

    @property
    def emulation(self) -> Emulation | None:
        """The emulated link in front of the endpoint, if any."""
        ...

    @property
    def pids(self) -> list[int]:
        """Other processes whose CPU time an energy estimate for this target counts."""
        ...

    def prepare(self, queries: QuerySet) -> None:
        """Take the query set; called once before any session is opened."""
        ...

    def session(self) -> Session:
        """A new session for one load thread."""
        ...

    def close(self) -> None:
        """Stop whatever the target started."""
        ...


class _LocalSession:
    def __init__(self, model: Model | Pipeline, queries: QuerySet) -> None:
        self._predict = model.predict
        self._samples = queries.samples

    def run(self, index: int) -> Outputs:
        return self._predict(self._samples[index])

    def close(self) -> None:
        pass


class LocalTarget:
    """The model in this process, through :meth:`Model.predict` (telemetry included)."""

    kind = "in-process"
    url = None
    format = "in-process"
    emulation = None

    def __init__(self, model: Model | Pipeline, name: str = "edge") -> None:
        self.name = name
        self.model = model
        self.pids: list[int] = []
        self._queries = QuerySet([])

    def prepare(self, queries: QuerySet) -> None:
        """Keep the query set; samples are passed to ``predict`` as they are."""
        self._queries = queries

    def session(self) -> Session:
        """A session calling ``predict`` directly (the model is thread-safe)."""
        return _LocalSession(self.model, self._queries)

    def close(self) -> None:
        """Nothing to stop: the caller owns the model."""


class _RemoteSession:
    def __init__(self, url: str, path: str, requests: list[tuple[bytes, dict[str, str]]]) -> None:
        self._client = OIPClient(url, timeout=60.0)
        self._path = path
        self._requests = requests

    def run(self, index: int) -> Outputs:
        body, headers = self._requests[index]
        try:
            status, response_headers, payload = self._client.request(
                "POST", self._path, body, headers
            )
        except OIPError as exc:
            raise TargetError(str(exc)) from None
        if status != 200:
            raise TargetError(f"HTTP {status}: {payload[:200].decode(errors='replace')}")
        length = response_headers.get("inference-header-content-length")
        return decode_response_outputs(payload, None if length is None else int(length))

    def close(self) -> None:
        self._client.close()


class RemoteTarget:
    """An Open Inference Protocol endpoint: Triton, KServe, MLServer or `edgefleet serve`.

    The endpoint's metadata is checked against the model's inputs when the target is created,
    so a wrong URL or a different model fails before any measurement.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        inputs: Sequence[TensorSpec],
        *,
        name: str = "cloud",
        binary: bool = True,
        kind: str = "remote",
        emulation: Emulation | None = None,
        pids: Sequence[int] = (),
    ) -> None:
        self.name, self.kind, self.url = name, kind, url
        self.format = "binary" if binary else "json"
        self.emulation = emulation
        self.pids = list(pids)
        self.model_name = model_name
        self._binary = binary
        self._path = f"/v2/models/{model_name}/infer"
        self._requests: list[tuple[bytes, dict[str, str]]] = []
        self._check(inputs)

    def _check(self, inputs: Sequence[TensorSpec]) -> None:
        client = OIPClient(self.url, timeout=10.0)
        try:
            meta = client.metadata(self.model_name)
        except OIPError as exc:
            raise TargetError(f"{self.url}: model {self.model_name!r}: {exc}") from None
        finally:
            client.close()
        theirs = {t.get("name"): t for t in meta.get("inputs") or []}
        if not theirs:  # MLServer's custom models, for one, publish no tensor metadata
            log.warning(
                "%s model %r publishes no inputs in its metadata; sending the local model's "
                "inputs unchecked",
                self.url,
                self.model_name,
            )
            return
        for spec in inputs:
            remote = theirs.get(spec.name)
            if remote is None:
                raise TargetError(
                    f"{self.url} model {self.model_name!r} has no input {spec.name!r} "
                    f"(it has {sorted(map(str, theirs))})"
                )
            if remote.get("datatype") != spec.datatype:
                raise TargetError(
                    f"{self.url} model {self.model_name!r} input {spec.name!r} is "
                    f"{remote.get('datatype')}, the local model's is {spec.datatype}"
                )
            shape = remote.get("shape", [])
            ours = spec.protocol_shape
            pairs = zip(shape, ours, strict=False)
            fixed_differs = any(a != b and a >= 0 and b >= 0 for a, b in pairs)
            if len(shape) != len(ours) or fixed_differs:
                raise TargetError(
                    f"{self.url} model {self.model_name!r} input {spec.name!r} has shape "
                    f"{shape}, the local model's is {ours}"
                )

    def prepare(self, queries: QuerySet) -> None:
        """Encode every sample's request body once, before timing starts."""
        self._requests = [encode_request(s, binary=self._binary) for s in queries.samples]

    def session(self) -> Session:
        """A session with its own keep-alive connection."""
        return _RemoteSession(self.url, self._path, self._requests)

    def close(self) -> None:
        """Nothing to stop: the endpoint is not ours."""


class _Served:
    """An `edgefleet serve` subprocess, optionally behind the emulation proxy."""

    def __init__(self, proc: subprocess.Popen[str], proxy: NetemProxy | None) -> None:
        self.proc, self.proxy = proc, proxy

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ManagedTarget(RemoteTarget):
    """A remote target that owns what stands behind it (a proxy, a server) and stops it."""

    def __init__(self, stop: Callable[[], None], **kwargs: Any) -> None:
        self._stop = stop
        try:
            super().__init__(**kwargs)
        except BaseException:
            stop()
            raise

    def close(self) -> None:
        """Stop what the target owns."""
        self._stop()


class _StartupWatch:
    """Read the server's stderr on a thread: find the announced URL, then keep the pipe drained.

    Lines before the announcement (warnings, say) are kept for the error message if the server
    never announces itself.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.port: int | None = None
        self.done = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                if self.port is None:
                    self.lines.append(line)
                    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
                    if match:
                        self.port = int(match.group(1))
                        self.done.set()
        self.done.set()


def serve_command(model_path: Path, options: Mapping[str, Any]) -> list[str]:
    """The `edgefleet serve` command line for ``model_path`` with runtime ``options``.

    >>> serve_command(Path("m.onnx"), {"intra_op_threads": 1, "spin_wait": True})[-3:]
    ['--threads', '1', '--spin-wait']
    >>> serve_command(Path("m.onnx"), {"providers": "auto"})[-2:]
    ['--providers', 'auto']
    >>> serve_command(Path("m.onnx"), {"providers": ("A", "B")})[-2:]
    ['--providers', 'A,B']
    """
    command = [sys.executable, "-m", "edgefleet", "serve", str(model_path), "--name", "bench"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    if "intra_op_threads" in options:
        command += ["--threads", str(options["intra_op_threads"])]
    if "spin_wait" in options:
        command.append("--spin-wait" if options["spin_wait"] else "--no-spin-wait")
    if "providers" in options:
        providers = options["providers"]
        command += ["--providers", providers if isinstance(providers, str) else ",".join(providers)]
    return command


def serve_locally(
    model_path: Path,
    inputs: Sequence[TensorSpec],
    *,
    emulation: Emulation | None = None,
    binary: bool = True,
    name: str | None = None,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    start_timeout_s: float = 120.0,
) -> RemoteTarget:
    """Start `edgefleet serve MODEL` on a free loopback port and return it as a target.

    ``options`` are the runtime options of the measured model (threads, spin-wait, providers),
    so that the server runs the model as the in-process target does. With ``emulation`` the
    target is the emulation proxy in front of the server: "what the cloud would look like" for
    this model (target name ``cloud``); without, the server itself (``loopback``).
    """
    proc = subprocess.Popen(
        serve_command(model_path, options or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    watch = _StartupWatch(proc.stderr)
    watch.done.wait(start_timeout_s)
    if watch.port is None:
        _Served(proc, None).stop()
        said = "".join(watch.lines).strip()[-500:] or f"nothing within {start_timeout_s:g} s"
        raise TargetError(f"edgefleet serve {model_path} did not start: {said}")
    port = watch.port
    proxy = None
    if emulation is not None:
        proxy = NetemProxy("127.0.0.1", port, emulation, seed=seed)
        try:
            proxy.start()
        except BaseException:
            _Served(proc, None).stop()
            raise
        port = proxy.port
    return ManagedTarget(
        _Served(proc, proxy).stop,
        url=f"http://127.0.0.1:{port}",
        model_name="bench",
        inputs=inputs,
        name=name or ("cloud" if emulation else "loopback"),
        binary=binary,
        kind="emulated" if emulation else "loopback",
        emulation=emulation,
        pids=[proc.pid],
    )
