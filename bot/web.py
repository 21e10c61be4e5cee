"""The web application: webhook ingress, health, operator API. Dependencies are wired in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from bot import __version__, ingress, messages, metrics, root
from bot.dashboard import routes as dashboard_routes
from bot.dashboard import scrape
from bot.dashboard.auth import bound_to_loopback, require_viewer
from bot.features import Features
from bot.github import GitHubAPI
from bot.routing import Router
from bot.runners.local import check_sandbox
from bot.runs import api as runs_api
from bot.runs import tickets as run_tickets
from bot.services import open_store
from bot.settings import Settings
from bot.stalls import watch_loop
from bot.store.db import Store
from bot.store.inbox import InboxWriter
from bot.store.models import DeliveryStatus
from bot.worker import LoopFailed, build_worker

log = logging.getLogger(__name__)


async def preflight(settings: Settings, *, worker: bool = True) -> None:
    """Check before serving that the database opens and is migrated, and (when this process runs local agents)
    that their sandbox works, so a failure is one clear line."""
    store = await open_store(settings)
    await store.close()
    if worker:
        await asyncio.to_thread(check_local_sandbox, settings)


def check_local_sandbox(settings: Settings) -> None:
    """When this server runs local agents, their sandbox must work here: `SettingsError` in one line otherwise."""
    if "local" in settings.enabled_runners:
        local = settings.local
        if not local.unsafe_no_sandbox:  # the opt-out is announced once, when the scheduler is built
            check_sandbox(local.bwrap)


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    router: Router[Features] | None = None,
    github: GitHubAPI | None = None,
) -> FastAPI:
    """Build the app. `github` replaces the gateway (tests pass a fake); `router` replaces the root router."""
    webhook_secret = settings.require_webhook_secret()
    if github is None and settings.app_id is not None:
        settings.require_app_credentials()  # a half-configured App is an error now, not at the first event

    @asynccontextmanager
    async def lifespan(app: ingress.KickoffApp) -> AsyncIterator[None]:
        async with (
            root.running(settings, github=github, metrics=app.state.metrics) as services,
            _serving(app, services, real_gateway=github is None and services.github is not None),
        ):
            yield

    @asynccontextmanager
    async def _serving(app: ingress.KickoffApp, services: Features, *, real_gateway: bool) -> AsyncIterator[None]:
        stalls = watch_loop(settings.stall_log_ms)
        writer = InboxWriter(services.inbox)
        writer.start()
        warn_about_open_surfaces(settings)
        reaper = asyncio.create_task(app.webhook_ingress.guard.run(), name="webhook-read-deadlines")
        app.state.services = services
        app.state.metrics.watch_queue(services.queue.facts.drift)
        app.state.inbox_writer = writer
        app.state.webhook_secret = webhook_secret
        stop = asyncio.Event()
        working: asyncio.Task[None] | None = None
        if run_worker:
            # Redelivery asks GitHub's own deliveries API: only with the App's gateway, never a stand-in.
            worker = build_worker(services, router or root.router(settings), redeliver=real_gateway)
            app.state.dispatcher = worker.dispatcher
            app.state.scheduler = worker.runs.scheduler if worker.runs is not None else None
            working = asyncio.create_task(worker.run(stop), name="worker")
        try:
            yield
        finally:
            stop.set()
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            if working is not None:
                with contextlib.suppress(asyncio.CancelledError, LoopFailed):  # a dead loop was logged as it died
                    await working
            await writer.stop()
            if stalls is not None:
                stalls.stop()

    app = ingress.KickoffApp(title="Kickoff", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.metrics = metrics.Metrics()
    app.webhook_ingress.guard = ingress.BodyGuard(settings.ingress.body_budget, settings.ingress.read_seconds)
    app.state.metrics.watch_ingress(app.webhook_ingress.guard)
    app.include_router(runs_api.router)
    app.include_router(run_tickets.router)
    app.include_router(dashboard_routes.router)
    app.include_router(scrape.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        store: Store = request.app.state.services.store
        try:
            await store.ping()
            current = await store.is_current()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "unavailable", "database": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/api/deliveries")
    async def list_deliveries(
        request: Request,
        status: str | None = Query(default=None),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        _check_operator(request, settings)
        if status is not None and status not in DeliveryStatus.ALL:
            raise HTTPException(400, f"status must be one of {', '.join(DeliveryStatus.ALL)}")
        rows = await request.app.state.services.inbox.list(status=status, limit=limit)
        return [
            {
                "id": d.id,
                "event": d.event,
                "action": d.action,
                "installation_id": d.installation_id,
                "repository": d.repository,
                "status": d.status,
                "attempts": d.attempts,
                "received_at": d.received_at.isoformat(),
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "finished_at": d.finished_at.isoformat() if d.finished_at else None,
                "last_error": d.last_error,
            }
            for d in rows
        ]

    return app


def _check_operator(request: Request, settings: Settings) -> None:
    """Operator endpoints sit behind DASHBOARD_TOKEN (bearer header or the dashboard's cookie); without it they
    answer only local requests (see bot.dashboard.auth)."""
    require_viewer(request, settings)


def warn_about_open_surfaces(settings: Settings) -> None:
    """Say at start-up which operator surfaces answer nobody, because the server is not bound to loopback."""
    if bound_to_loopback(settings):
        return
    if settings.dashboard_token is None:
        log.warning(messages.DASHBOARD_OFF_AT_START.format(host=settings.host))
    if settings.metrics_token is None:
        log.warning(messages.METRICS_OFF_AT_START.format(host=settings.host))
