"""A loopback device API for the agent's tests: real HTTP, real TUF metadata, real signatures.

This is not the control plane: devices, events and telemetry live in dicts, and only what the
agent's tests need is implemented. It speaks the device API of ``edgefleet.protocol.v1`` over
the project's own HTTP server on 127.0.0.1, signs desired states with a real director key and
serves a real TUF repository (``TufRepository`` over an in-memory metadata store), so the agent
runs its production code paths end to end.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ValidationError

from edgefleet.protocol.signing import SigningKey, sign_desired_state
from edgefleet.protocol.v1 import (
    API_PREFIX,
    BatchAck,
    DesiredModel,
    DesiredState,
    EnrollRequest,
    EnrollResponse,
    Event,
    EventBatch,
    Heartbeat,
    HeartbeatAck,
    ShadowSpec,
    TelemetryBatch,
    TelemetryWindow,
    UpdatePolicy,
)
from edgefleet.runtime.oip.http import HTTPServer, Request, Response
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.registry.tuf_repo import InMemoryMetadataStore, TargetSpec, TufRepository

ENROLL_TOKEN = "enroll-token-0123456789"


def _json(
    status: int, body: BaseModel | dict[str, Any], headers: list[tuple[str, str]] | None = None
) -> Response:
    data = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    return Response(status, data.encode(), headers=headers or [])


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message, "code": "test"})


class LoopbackControlPlane:
    """The device API on ``127.0.0.1:<free port>`` while used in a ``with`` block.

    Attributes
    ----------
    fail_status
        When set, every device request (enrolment included) gets this status.
    overrides
        Path (after the API prefix) to a fixed (status, body) answer.
    lose_answers
        Paths whose requests are processed, but answered with 502 (the answer got lost).
    """

    def __init__(self, keys: RepositoryKeys, *, tokens: tuple[str, ...] = (ENROLL_TOKEN,)) -> None:
        self.repo = TufRepository.initialize(InMemoryMetadataStore(), keys, now=time.time())
        self.director = SigningKey.generate()
        self.tokens = set(tokens)
        self.credentials: dict[str, str] = {}  # credential -> device id
        self.enrolments: list[EnrollRequest] = []
        self.heartbeats: list[Heartbeat] = []
        self.events: dict[str, Event] = {}
        self.windows: dict[str, TelemetryWindow] = {}
        self.batches: list[TelemetryBatch] = []
        self.targets: dict[str, bytes] = {}
        self.fail_status: int | None = None
        self.overrides: dict[str, tuple[int, bytes]] = {}
        self.lose_answers: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []
        self._desired: dict[str, DesiredState] = {}
        self._changed = threading.Condition()
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- test controls --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:45678``."""
        assert self._server is not None
        return self._server.url

    def publish(
        self, name: str, release: int, data: bytes, *, golden: bytes | None = None, **custom: Any
    ) -> DesiredModel:
        """Sign ``data`` (and golden inputs) into the TUF repository; the desired model."""
        target = f"models/{name}/r{release}.onnx"
        golden_target = f"golden/{name}/r{release}.npz" if golden is not None else None
        specs = []
        for path, blob in ((target, data), (golden_target, golden)):
            if path is None or blob is None:
                continue
            sha = hashlib.sha256(blob).hexdigest()
            self.targets[TufRepository.target_file_name(path, sha)] = blob
            fields = {"release": release, "model": name, "version": str(release), "golden": None}
            if path == target:
                fields.update({"golden": golden_target, **custom})
            specs.append(TargetSpec(path, len(blob), sha, fields))
        self.repo.add_targets(specs, time.time())
        return DesiredModel(
            name=name,
            version=str(release),
            target=target,
            release=release,
            sha256=hashlib.sha256(data).hexdigest(),
            length=len(data),
        )

    def set_desired(
        self,
        device_id: str,
        model: DesiredModel | None,
        *,
        shadow: ShadowSpec | None = None,
        policy: UpdatePolicy | None = None,
    ) -> DesiredState:
        """Give the device a new desired-state version and wake its long poll."""
        with self._changed:
            before = self._desired.get(device_id)
            now = time.time()
            state = DesiredState(
                device_id=device_id,
                version=(before.version if before else 0) + 1,
                issued_at=now,
                expires_at=now + 3600,
                model=model,
                shadow=shadow,
                policy=policy,
            )
            self._desired[device_id] = state
            self._changed.notify_all()
        return state

    def revoke(self, device_id: str) -> None:
        """Forget the device's credential."""
        self.credentials = {c: d for c, d in self.credentials.items() if d != device_id}

    def event_kinds(self) -> list[str]:
        """Kinds of the received events, by time."""
        return [e.kind for e in sorted(self.events.values(), key=lambda e: e.at)]

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LoopbackControlPlane:
        self._server = HTTPServer(
            self._handle, "127.0.0.1", 0, error_body=lambda m: json.dumps({"error": m}).encode()
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._changed:
            self._changed.notify_all()
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown(2)
        self._thread.join(5)

    # -- the device API ------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        response = self._route(request)
        if request.path.removeprefix(API_PREFIX) in self.lose_answers:
            response = _error(502, "the answer was lost on the way")
        self.requests.append((request.method, request.path, response.status))
        return response

    def _route(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX):
            return _error(404, f"no route {request.path}")
        path = request.path.removeprefix(API_PREFIX)
        if self.fail_status is not None:
            return _error(self.fail_status, "the test says no")
        if path in self.overrides:
            status, body = self.overrides[path]
            return Response(status, body, content_type="text/html")
        try:
            if path == "/enroll" and request.method == "POST":
                return self._enroll(EnrollRequest.model_validate_json(request.body))
            device = self.credentials.get(
                request.headers.get("authorization", "").removeprefix("Bearer ")
            )
            if device is None:
                return _error(401, "unknown or revoked device credential")
            if path == "/heartbeat":
                self.heartbeats.append(Heartbeat.model_validate_json(request.body))
                state = self._desired.get(device)
                ack = HeartbeatAck(
                    server_time=time.time(), desired_version=state.version if state else 0
                )
                return _json(200, ack)
            if path == "/desired-state":
                return self._desired_state(device, request)
            if path == "/events":
                return self._store(EventBatch.model_validate_json(request.body).events, self.events)
            if path == "/telemetry":
                batch = TelemetryBatch.model_validate_json(request.body)
                self.batches.append(batch)
                return self._store(batch.windows, self.windows)
            if path.startswith("/tuf/metadata/"):
                return Response(200, self.repo.metadata(path.removeprefix("/tuf/metadata/")))
            if path.startswith("/tuf/targets/"):
                data = self.targets.get(path.removeprefix("/tuf/targets/"))
                if data is None:
                    return _error(404, "no such target")
                return Response(200, data, content_type="application/octet-stream")
        except ValidationError as exc:
            return _error(422, f"invalid request: {exc}")
        except Exception as exc:  # e.g. unknown TUF metadata file
            return _error(404, str(exc))
        return _error(404, f"no route {path}")

    def _enroll(self, body: EnrollRequest) -> Response:
        if body.token not in self.tokens:
            return _error(401, "enrolment token is unknown, expired or used up")
        self.tokens.discard(body.token)
        self.enrolments.append(body)
        device_id = "dev-" + secrets.token_hex(4)
        credential = secrets.token_hex(16)
        self.credentials[credential] = device_id
        self.set_desired(device_id, None)
        return _json(
            200,
            EnrollResponse(
                device_id=device_id,
                credential=credential,
                tuf_root=self.repo.trusted_root(),
                desired_state_keys=self.director.public_keys(),
            ),
        )

    def _desired_state(self, device: str, request: Request) -> Response:
        wait = float(parse_qs(request.query).get("wait", ["0"])[0])
        known = request.headers.get("if-none-match")
        deadline = time.monotonic() + min(wait, 5.0)
        with self._changed:
            while True:
                state = self._desired.get(device)
                if state is None:
                    return Response(204)
                etag = f'"{state.version}"'
                if known != etag:
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self._server is None or self._server.stopping:
                    return Response(304, headers=[("ETag", etag)])
                self._changed.wait(min(left, 0.2))
        signed = sign_desired_state(state, self.director)
        return _json(200, signed, headers=[("ETag", etag)])

    @staticmethod
    def _store(items: list[Any], into: dict[str, Any]) -> Response:
        accepted = 0
        for item in items:
            key = item.window_id if isinstance(item, TelemetryWindow) else item.event_id
            if key not in into:
                into[key] = item
                accepted += 1
        return _json(200, BatchAck(accepted=accepted, duplicates=len(items) - accepted))
