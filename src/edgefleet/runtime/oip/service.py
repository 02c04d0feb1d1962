"""The Open Inference Protocol (KServe V2) REST endpoints over a :class:`ModelRepository`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgefleet import __version__
from edgefleet.errors import (
    EdgefleetError,
    InputDTypeError,
    ModelNotFoundError,
    ProtocolError,
)
from edgefleet.runtime.oip.codec import decode_request, encode_response
from edgefleet.runtime.oip.http import Request, Response
from edgefleet.runtime.oip.metrics import render_metrics
from edgefleet.runtime.oip.status import error_body, http_status
from edgefleet.runtime.repository import ModelRepository
from edgefleet.runtime.servable import Servable

__all__ = ["InferenceService"]

EXTENSIONS = ["binary_tensor_data", "statistics"]
_HEADER_LENGTH = "inference-header-content-length"


@dataclass
class _Stat:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


class _ModelStats:
    """Per model version request statistics, as the statistics extension reports them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.success = _Stat()
        self.fail = _Stat()
        self.compute_input = _Stat()
        self.compute_infer = _Stat()
        self.compute_output = _Stat()
        self.last_inference_ms = 0

    def to_dict(self, name: str, version: str) -> dict[str, Any]:
        with self.lock:
            return {
                "name": name,
                "version": version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.success.count,
                "execution_count": self.success.count,
                "inference_stats": {
                    "success": self.success.to_dict(),
                    "fail": self.fail.to_dict(),
                    "queue": {"count": self.success.count, "ns": 0},
                    "compute_input": self.compute_input.to_dict(),
                    "compute_infer": self.compute_infer.to_dict(),
                    "compute_output": self.compute_output.to_dict(),
                },
                "batch_stats": [],
            }


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


def _error(exc: EdgefleetError) -> Response:
    return Response(http_status(exc), error_body(str(exc)))


class InferenceService:
    """Routes HTTP requests to the Open Inference Protocol handlers.

    Parameters
    ----------
    repository
        What is served.
    server_name
        Reported by ``GET /v2``.
    routes
        Extra exact paths (e.g. ``/agent/v1/hold``) and their handlers, which answer every
        method themselves; they take precedence over the protocol's routes.
    """

    def __init__(
        self,
        repository: ModelRepository,
        *,
        server_name: str = "edgefleet",
        routes: Mapping[str, Callable[[Request], Response]] | None = None,
    ) -> None:
        self.repository = repository
        self.server_name = server_name
        self.routes = dict(routes or {})
        self.ready = True
        self._stats: dict[tuple[str, str], _ModelStats] = {}
        self._stats_lock = threading.Lock()

    def _model_stats(self, name: str, version: str) -> _ModelStats:
        key = (name, version)
        stats = self._stats.get(key)
        if stats is None:
            with self._stats_lock:
                stats = self._stats.setdefault(key, _ModelStats())
        return stats

    # -- routing ------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        """Answer one request."""
        parts = [p for p in request.path.split("/") if p]
        extra = self.routes.get("/" + "/".join(parts))
        try:
            if extra is not None:
                return extra(request)
            return self._route(request, parts)
        except EdgefleetError as exc:
            return _error(exc)

    def _route(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        if parts == ["metrics"]:
            return self._only(method, "GET") or self._metrics()
        if not parts or parts[0] != "v2":
            raise ModelNotFoundError(f"no route for {request.path}")
        rest = parts[1:]
        if not rest:
            return self._only(method, "GET") or _json(
                200, {"name": self.server_name, "version": __version__, "extensions": EXTENSIONS}
            )
        if rest[0] == "health" and len(rest) == 2 and rest[1] in ("live", "ready"):
            if bad := self._only(method, "GET"):
                return bad
            if rest[1] == "live":
                return _json(200, {"live": True})
            ready = self.ready and bool(self.repository.names())
            return _json(200 if ready else 503, {"ready": ready})
        if rest[0] != "models" or len(rest) < 2:
            raise ModelNotFoundError(f"no route for {request.path}")
        if rest[1:] == ["stats"]:
            return self._only(method, "GET") or self._statistics(None, None)
        name, tail = rest[1], rest[2:]
        version = None
        if len(tail) >= 2 and tail[0] == "versions":
            version, tail = tail[1], tail[2:]
        if not tail:
            if bad := self._only(method, "GET"):
                return bad
            return _json(200, self._metadata(self.repository.get(name, version)))
        if tail == ["ready"]:
            if bad := self._only(method, "GET"):
                return bad
            servable = self.repository.get(name, version)
            ready = self.ready and not servable.closed
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        if tail == ["stats"]:
            return self._only(method, "GET") or self._statistics(name, version)
        if tail == ["infer"]:
            return self._only(method, "POST") or self._infer(request, name, version)
        raise ModelNotFoundError(f"no route for {request.path}")

    @staticmethod
    def _only(method: str, allowed: str) -> Response | None:
        if method == allowed or (allowed == "GET" and method == "HEAD"):
            return None
        return Response(405, error_body(f"method {method} not allowed here; use {allowed}"))

    # -- handlers -----------------------------------------------------------------------------

    @staticmethod
    def _metadata(servable: Servable) -> dict[str, Any]:
        return {
            "name": servable.name,
            "versions": [servable.version],
            "platform": servable.platform,
            "inputs": [s.to_dict() for s in servable.inputs],
            "outputs": [s.to_dict() for s in servable.outputs],
        }

    def _statistics(self, name: str | None, version: str | None) -> Response:
        if name is None:
            servables = [self.repository.get(n) for n in self.repository.names()]
        else:
            servables = [self.repository.get(name, version)]
        return _json(
            200,
            {
                "model_stats": [
                    self._model_stats(s.name, s.version).to_dict(s.name, s.version)
                    for s in servables
                ]
            },
        )

    def _metrics(self) -> Response:
        servables = [self.repository.get(n) for n in self.repository.names()]
        totals = [s.telemetry.totals() for s in servables]
        with self._stats_lock:
            items = list(self._stats.items())
        requests = [(n, v, st.success.count, st.fail.count) for (n, v), st in items]
        text = render_metrics(totals, requests)
        return Response(200, text.encode(), content_type="text/plain; version=0.0.4")

    def _infer(self, request: Request, name: str, version: str | None) -> Response:
        start = time.perf_counter_ns()
        servable = self.repository.get(name, version)
        stats = self._model_stats(servable.name, servable.version)
        try:
            header_length = self._header_length(request)
            decoded = decode_request(request.body, header_length)
            expected = {s.name: s for s in servable.inputs}
            for input_name, given in decoded.datatypes.items():
                spec = expected.get(input_name)
                if spec is not None and given != spec.datatype:
                    raise InputDTypeError(
                        f"input {input_name!r} of model {servable.name!r} expects "
                        f"{spec.datatype}, request says {given}"
                    )
            decoded_at = time.perf_counter_ns()
            servable, results = self.repository.answer(name, decoded.inputs, version)
            inferred_at = time.perf_counter_ns()
            by_name = {s.name: s for s in servable.outputs}
            wanted = decoded.outputs
            if wanted is None:
                selection: list[tuple[str, bool | None]] = [
                    (s.name, None) for s in servable.outputs
                ]
            else:
                selection = []
                for out in wanted:
                    if out.name not in by_name:
                        raise ProtocolError(
                            f"model {servable.name!r} has no output {out.name!r}; it has "
                            f"{', '.join(map(repr, by_name))}"
                        )
                    selection.append((out.name, out.binary))
            outputs = [
                (
                    out_name,
                    by_name[out_name].type,
                    results[out_name],
                    decoded.binary_output if binary is None else binary,
                )
                for out_name, binary in selection
            ]
            body, json_length = encode_response(
                servable.name, servable.version, decoded.id, outputs
            )
        except EdgefleetError as exc:
            with stats.lock:
                stats.fail.add(time.perf_counter_ns() - start)
            return _error(exc)
        done = time.perf_counter_ns()
        with stats.lock:
            stats.success.add(done - start)
            stats.compute_input.add(decoded_at - start)
            stats.compute_infer.add(inferred_at - decoded_at)
            stats.compute_output.add(done - inferred_at)
            stats.last_inference_ms = int(time.time() * 1000)
        if json_length is None:
            return Response(200, body)
        return Response(
            200,
            body,
            content_type="application/octet-stream",
            headers=[("Inference-Header-Content-Length", str(json_length))],
        )

    @staticmethod
    def _header_length(request: Request) -> int | None:
        raw = request.headers.get(_HEADER_LENGTH)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length {raw!r} is not an integer"
            ) from None
