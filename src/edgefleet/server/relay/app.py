"""The relay's ASGI app: the device API passed through, federated updates held in the region.

Every request under ``/api/device/v1/`` goes to the upstream control plane as it came (method,
path, query, headers with the device's credential, body) and its answer streams back, long
polls included, except ``POST /api/device/v1/fl/{job}/{round}/update``: the relay asks the
upstream who the credential belongs to (``GET /api/device/v1/identity``, cached a minute),
refuses devices of other regions, checks and decodes the update with the job's codec and
holds it. When every selected device of the region has sent, or the round's deadline is near,
it uploads the region's aggregate alone (``POST /api/operator/v1/fl/jobs/{job}/rounds/
{round}/regional``). Held updates live in memory only: a relay restart loses those of open
rounds, and their devices count as dropouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgefleet import __version__
from edgefleet.errors import EdgefleetError
from edgefleet.protocol.v1 import API_PREFIX, FL_EXAMPLES_HEADER, FLUpdateAck
from edgefleet.server.api.errors import error_response, status_for
from edgefleet.server.api.fl_regional import DEVICES_HEADER, PRIVACY_HEADER, REGION_HEADER
from edgefleet.server.relay.forwarding import Forwarder
from edgefleet.server.relay.holding import HeldRound, check_update
from edgefleet.server.relay.settings import RelaySettings
from edgefleet.server.services.fl import REGION_PREFIX
from edgefleet.server.services.fl_regional import REGION_LABEL

__all__ = ["Relay", "begin_relay_shutdown", "create_relay_app"]

log = logging.getLogger("edgefleet.relay")

_KEEP_SENT_S = 600.0
"""How long a forwarded round is remembered after its deadline (to answer late retries)."""


class _RefusedError(Exception):
    """An answer to send the device as it is (an upstream error, or the relay's own)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.response = error_response(status, message, code)


class Relay:
    """The relay's state: cached identities and jobs, and the rounds it holds."""

    def __init__(self, settings: RelaySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.rounds: dict[tuple[str, int], HeldRound] = {}
        self._identities: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()
        self._rng = np.random.default_rng()
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarder = Forwarder(settings.upstream, client)

    def begin_shutdown(self) -> None:
        """The relay begins to stop: the long polls it holds answer 304 now (signal-safe)."""
        self.forwarder.begin_shutdown()

    @property
    def _operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token.get_secret_value()}"}

    # -- pass-through -------------------------------------------------------------------------

    async def forward(self, request: Request) -> Response:
        """Send ``request`` upstream unchanged; see :class:`Forwarder`."""
        return await self.forwarder.forward(request)

    # -- federated updates --------------------------------------------------------------------

    async def update(self, request: Request) -> Response:
        """Hold a device's update in the region (never forwarded as it is)."""
        job_id = request.path_params["job_id"]
        round_ = int(request.path_params["round_"])
        try:
            identity = await self._identity(request.headers.get("authorization", ""))
            device_id = str(identity["device_id"])
            label = identity.get("labels", {}).get(REGION_LABEL)
            if label != self.settings.region:
                raise _RefusedError(
                    403,
                    f"device {device_id} is in region {label or '(none)'}, this relay serves "
                    f"region {self.settings.region}: send updates to your region's relay",
                    "auth.forbidden",
                )
            payload = await request.body()
            held = await self._round(job_id, round_)
            detail = await self._hold(
                held, device_id, payload, request.headers.get(FL_EXAMPLES_HEADER)
            )
        except _RefusedError as refused:
            return refused.response
        except EdgefleetError as exc:
            return error_response(status_for(exc), str(exc), exc.code)
        if held.complete and held.state == "holding":
            self._spawn(self._send(held))
        ack = FLUpdateAck(job_id=job_id, round=round_, accepted=True, detail=detail)
        return JSONResponse(ack.model_dump(mode="json"))

    async def _identity(self, authorization: str) -> dict[str, Any]:
        key = hashlib.sha256(authorization.encode()).hexdigest()
        cached = self._identities.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = await self._upstream(
            "GET", API_PREFIX + "/identity", {"Authorization": authorization}
        )
        identity: dict[str, Any] = answer.json()
        self._identities = {k: v for k, v in self._identities.items() if v[0] > now}
        self._identities[key] = (now + self.settings.identity_ttl_s, identity)
        return identity

    async def _upstream(
        self, method: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        try:
            answer = await self.client.request(
                method, self.settings.upstream + path, headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise _RefusedError(
                503, f"the upstream control plane is unreachable: {exc}", "relay.upstream"
            ) from exc
        if not answer.is_success:
            try:
                body = answer.json()
                message, code = str(body["error"]), str(body.get("code", ""))
            except (ValueError, KeyError, TypeError):
                message, code = answer.text[:200], "relay.upstream"
            raise _RefusedError(answer.status_code, message, code)
        return answer

    async def _round(self, job_id: str, round_: int) -> HeldRound:
        async with self._lock:
            held = self.rounds.get((job_id, round_))
            if held is not None:
                return held
            status = (
                await self._upstream("GET", f"/api/operator/v1/fl/jobs/{job_id}", self._operator)
            ).json()
            found = [r for r in status["rounds"] if r["round"] == round_]
            if not found:
                raise _RefusedError(
                    404, f"federated job {job_id} has no round {round_}", "resource.not_found"
                )
            row = found[0]
            if row["state"] != "open":
                raise _RefusedError(
                    409, f"round {round_} of job {job_id} is closed", "resource.conflict"
                )
            selected = {
                d["device_id"]
                for d in row["devices"]
                if d["state"] != "refused" and not d["device_id"].startswith(REGION_PREFIX)
            }
            here = await self._upstream(
                "GET",
                "/api/operator/v1/devices",
                self._operator,
                params={"selector": f"{REGION_LABEL}={self.settings.region}"},
            )
            in_region = {d["device_id"] for d in here.json()}
            config = status["config"]
            held = HeldRound(
                job_id=job_id,
                round=round_,
                deadline=float(row["deadline"]),
                deadline_s=float(config["deadline_s"]),
                compression=str(config["compression"]),
                num_params=int(config["num_params"]),
                expected=frozenset(selected & in_region),
                privacy=config.get("privacy"),
            )
            self.rounds[(job_id, round_)] = held
            log.info(
                "job %s round %d: holding updates of %d devices in region %s",
                job_id,
                round_,
                len(held.expected),
                self.settings.region,
            )
            return held

    async def _hold(
        self, held: HeldRound, device_id: str, payload: bytes, examples: str | None
    ) -> str:
        region = self.settings.region
        if device_id in held.devices:
            if held.devices[device_id] == hashlib.sha256(payload).hexdigest():
                return f"already held in region {region}"
            raise _RefusedError(
                409, f"device {device_id} already sent round {held.round}", "resource.conflict"
            )
        if device_id not in held.expected:
            raise _RefusedError(
                403, f"device {device_id} was not selected for round {held.round}", "auth.forbidden"
            )
        if held.state != "holding":
            raise _RefusedError(
                409,
                f"round {held.round} of job {held.job_id}: region {region} already forwarded "
                "its aggregate",
                "resource.conflict",
            )
        delta, count = await anyio.to_thread.run_sync(
            check_update, held.compression, held.num_params, payload, examples
        )
        held.add(device_id, delta, count, payload)
        log.info(
            "job %s round %d: held an update of %d bytes (%d of %d devices in region %s)",
            held.job_id,
            held.round,
            len(payload),
            len(held.devices),
            len(held.expected),
            region,
        )
        return f"held in region {region}"

    async def _send(self, held: HeldRound) -> None:
        """Upload the region's aggregate for ``held`` (once; retried on transport errors)."""
        if held.state != "holding" or not held.devices:
            return
        held.state = "sending"
        payload = await anyio.to_thread.run_sync(held.aggregate, self._rng)
        spec = held.private
        headers: dict[str, str] = {
            **self._operator,
            "Content-Type": "application/octet-stream",
            REGION_HEADER: self.settings.region,
            DEVICES_HEADER: ",".join(sorted(held.devices)),
            FL_EXAMPLES_HEADER: str(held.examples),
            **({PRIVACY_HEADER: spec.spec()} if spec is not None else {}),
        }
        path = f"/api/operator/v1/fl/jobs/{held.job_id}/rounds/{held.round}/regional"
        try:
            await self._upstream("POST", path, headers, content=payload)
        except _RefusedError as refused:
            if refused.response.status_code >= 500 and time.time() < held.deadline:
                held.state = "holding"  # the upstream is away: the next tick tries again
                log.warning(
                    "job %s round %d: forwarding failed (%s); retrying",
                    held.job_id,
                    held.round,
                    refused,
                )
                return
            held.state = "failed"
            held.forget()
            log.warning(
                "job %s round %d: the upstream refused region %s's aggregate: %s",
                held.job_id,
                held.round,
                self.settings.region,
                refused,
            )
            return
        held.state = "sent"
        held.forget()
        log.info(
            "job %s round %d: forwarded region %s's aggregate of %d devices, %d examples, %d bytes",
            held.job_id,
            held.round,
            self.settings.region,
            len(held.devices),
            held.examples,
            len(payload),
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self, now: float) -> None:
        """Forward the rounds that are due; forget old ones."""
        for key, held in list(self.rounds.items()):
            if (
                held.state == "holding"
                and held.devices
                and held.due(now, self.settings.forward_margin_s)
            ):
                await self._send(held)
            else:
                idle = held.state == "holding" and not held.devices
                if now > held.deadline + (0.0 if idle else _KEEP_SENT_S):
                    del self.rounds[key]


def begin_relay_shutdown(app: Starlette) -> None:
    """The relay begins to stop: held long polls answer now (304) and new ones do not wait.

    Safe to call from a signal handler; see :class:`edgefleet.server.run.GracefulServer`.
    """
    relay: Relay | None = getattr(app.state, "relay", None)
    if relay is not None:
        relay.begin_shutdown()


def create_relay_app(settings: RelaySettings) -> Starlette:
    """The relay's ASGI app (its HTTP client and forwarding loop live with the app)."""
    state: dict[str, Relay] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        verify: Any = True
        if settings.upstream_ca_file is not None:
            import ssl

            verify = ssl.create_default_context(cafile=settings.upstream_ca_file)
        timeout = httpx.Timeout(settings.request_timeout_s, connect=10.0)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, verify=verify) as client:
            relay = state["relay"] = app.state.relay = Relay(settings, client)
            loop = asyncio.create_task(_loop(relay))
            try:
                yield
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    async def _loop(relay: Relay) -> None:
        while True:
            try:
                await relay.tick(time.time())
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("checking held rounds failed")
            await asyncio.sleep(settings.tick_s)

    async def update(request: Request) -> Response:
        return await state["relay"].update(request)

    async def forward(request: Request) -> Response:
        return await state["relay"].forward(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "region": settings.region})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route(API_PREFIX + "/fl/{job_id}/{round_:int}/update", update, methods=["POST"]),
            Route(API_PREFIX + "/{path:path}", forward, methods=methods),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
