"""The control plane's composition root: settings -> store -> registry -> FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from edgefleet import __version__
from edgefleet.protocol.signing import SigningKey
from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.server.api import audit as audit_api
from edgefleet.server.api import deployments as deployments_api
from edgefleet.server.api import devices as devices_api
from edgefleet.server.api import enroll_tokens as enroll_tokens_api
from edgefleet.server.api import fl as fl_api
from edgefleet.server.api import fl_regional as fl_regional_api
from edgefleet.server.api.device import v1 as device_v1
from edgefleet.server.api.errors import install_error_handlers
from edgefleet.server.api.limits import BodyLimit
from edgefleet.server.api.operator import OPERATOR_PREFIX
from edgefleet.server.api.operator import router as operator_router
from edgefleet.server.api.rollouts import router as rollouts_router
from edgefleet.server.context import ServerContext
from edgefleet.server.registry.artifacts import ArtifactStore
from edgefleet.server.registry.keys import ExpirySettings, RepositoryKeys
from edgefleet.server.registry.tuf_repo import TufRepository
from edgefleet.server.services import fl, rollout_eval
from edgefleet.server.settings import ServerSettings
from edgefleet.server.store import open_store

__all__ = ["DIRECTOR_KEY", "begin_shutdown", "build_context", "create_app", "expiry_settings"]

log = logging.getLogger("edgefleet.server")

_ROLLOUTS = "rollout-evaluator"
"""The lease that lets one server process at a time evaluate rollouts."""
_FEDERATED = "fl-coordinator"
"""The lease that lets one server process at a time open and close federated rounds."""
DIRECTOR_KEY = "director.key"


def expiry_settings(settings: ServerSettings) -> ExpirySettings:
    """TUF metadata lifetimes from the server settings."""
    return ExpirySettings(
        targets=timedelta(seconds=settings.targets_expiry_s),
        snapshot=timedelta(seconds=settings.snapshot_expiry_s),
        timestamp=timedelta(seconds=settings.timestamp_expiry_s),
    )


def build_context(settings: ServerSettings) -> ServerContext:
    """Open and migrate the store, load the online keys and the TUF repository."""
    store = open_store(settings.sqlalchemy_url)
    try:
        store.migrate()
        keys = RepositoryKeys.load(settings.keys_dir)
        repository = TufRepository(store, keys, expiry=expiry_settings(settings))
        director = SigningKey.load(settings.keys_dir / DIRECTOR_KEY)
    except BaseException:
        store.close()
        raise
    return ServerContext(
        settings=settings,
        store=store,
        repository=repository,
        artifacts=ArtifactStore(settings.artifacts_dir),
        director=director,
    )


def _resign(ctx: ServerContext, now: float) -> None:
    with ctx.registry_lock:
        roles = ctx.repository.refresh_expiring(now)
    if roles:
        log.info("re-signed TUF %s", ", ".join(roles))


async def _resign_loop(ctx: ServerContext) -> None:
    """Re-sign TUF metadata before it expires; one server process at a time does it."""
    interval = ctx.settings.resign_interval_s
    lease = max(3 * interval, 30.0)
    while True:
        try:
            now = time.time()
            if await run_in_threadpool(ctx.store.try_lock, "resign", ctx.instance, lease, now):
                await run_in_threadpool(_resign, ctx, now)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("re-signing the TUF timestamp failed")
        await asyncio.sleep(interval)


async def _rollout_loop(ctx: ServerContext) -> None:
    """Evaluate running rollouts; one server process at a time (a lease) does it."""
    interval = ctx.settings.rollout_eval_s
    lease = max(3 * interval, 30.0)
    while True:
        try:
            now = time.time()
            if await run_in_threadpool(ctx.store.try_lock, _ROLLOUTS, ctx.instance, lease, now):
                await run_in_threadpool(rollout_eval.evaluate_all, ctx)
            else:  # another process evaluates: what this one merged would only go stale
                ctx.rollout_windows.clear()
        except Exception:  # keep the loop alive; the next round retries
            log.exception("evaluating rollouts failed")
        await asyncio.sleep(interval)


async def _fl_loop(ctx: ServerContext) -> None:
    """Step running federated jobs; one server process at a time (a lease) does it."""
    interval = ctx.settings.fl_eval_s
    lease = max(3 * interval, 30.0)
    while True:
        try:
            now = time.time()
            if await run_in_threadpool(ctx.store.try_lock, _FEDERATED, ctx.instance, lease, now):
                await run_in_threadpool(fl.step_all, ctx, now)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("stepping federated jobs failed")
        await asyncio.sleep(interval)


async def _refresh_loop(ctx: ServerContext) -> None:
    """Keep the desired-version cache current with other server processes' writes."""
    interval = ctx.settings.desired_state_refresh_s
    while True:
        try:
            moved = await run_in_threadpool(ctx.versions.refresh)
        except Exception:  # the database may be briefly away; the next round retries
            log.exception("reading desired-state versions failed")
        else:
            if moved:
                ctx.changes.changed()  # long polls re-check their device
        await asyncio.sleep(interval)


async def _flush_loop(ctx: ServerContext) -> None:
    """Store buffered heartbeats every ``heartbeat_flush_s`` seconds."""
    while True:
        await asyncio.sleep(ctx.settings.heartbeat_flush_s)
        try:
            await run_in_threadpool(ctx.heartbeats.flush)
        except Exception:  # kept in the buffer; the next round retries
            log.exception("storing heartbeats failed")


def begin_shutdown(app: FastAPI) -> None:
    """The server begins to stop: held long polls answer now (304) and new ones do not wait.

    Safe to call from a signal handler. Without it the server would wait for every poll to
    run out (up to ``long_poll_max_s``) before it could stop, or cancel them.
    """
    app.state.stopping = True
    ctx: ServerContext | None = getattr(app.state, "ctx", None)
    if ctx is not None:
        ctx.changes.changed()


def create_app(
    settings: ServerSettings,
    ctx: ServerContext | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The FastAPI application; builds its :class:`ServerContext` on start-up unless given.

    ``on_ready`` runs once the store is migrated and the keys are loaded.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = ctx is None
        context = ctx if ctx is not None else await run_in_threadpool(build_context, settings)
        context.changes.bind(asyncio.get_running_loop())
        app.state.ctx = context
        await run_in_threadpool(context.versions.refresh)
        tasks = [
            asyncio.create_task(_resign_loop(context)),
            asyncio.create_task(_refresh_loop(context)),
            asyncio.create_task(_flush_loop(context)),
            asyncio.create_task(_rollout_loop(context)),
            asyncio.create_task(_fl_loop(context)),
        ]
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                await run_in_threadpool(context.heartbeats.flush)
            except Exception:
                log.exception("storing the last heartbeats at shutdown failed")
            for lock in ("resign", _ROLLOUTS, _FEDERATED):
                with contextlib.suppress(Exception):
                    context.store.release_lock(lock, context.instance)
            if own:
                context.store.close()

    app = FastAPI(
        title="edgefleet control plane",
        version=__version__,
        description="Device API (v1) for agents and operator API for people and the CLI.",
        lifespan=lifespan,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.stopping = False  # set by begin_shutdown
    install_error_handlers(app)
    app.include_router(device_v1.router)
    app.include_router(operator_router)
    app.include_router(rollouts_router)
    app.include_router(fl_api.operator_router)
    app.include_router(fl_api.device_router)
    app.include_router(fl_regional_api.operator_router)
    app.include_router(fl_regional_api.device_router)
    app.include_router(devices_api.router)
    app.include_router(enroll_tokens_api.router)
    app.include_router(deployments_api.router)
    app.include_router(audit_api.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    app.add_middleware(audit_api.AuditTrail)
    app.add_middleware(
        BodyLimit,
        default=settings.max_body_bytes,
        limits={
            f"{OPERATOR_PREFIX}/models": settings.max_model_bytes + 1024 * 1024,
            f"{API_PREFIX}/fl/": settings.max_fl_update_bytes,
            f"{OPERATOR_PREFIX}/fl/jobs/": settings.max_fl_update_bytes,  # regional aggregates
        },
    )
    return app
