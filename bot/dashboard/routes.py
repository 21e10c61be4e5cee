"""`GET /`: the server-rendered dashboard, its live fragment, the login form, and the JSON twins."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot import __version__
from bot.dashboard import format as fmt
from bot.dashboard import outcomes, queries
from bot.dashboard.auth import (
    COOKIE,
    Access,
    access,
    require_viewer,
    secure_cookies,
    session_value,
    token_matches,
    unsafe_message,
)
from bot.dashboard.chart import chart
from bot.services import Services
from bot.settings import Settings
from bot.store.models import DeliveryStatus

router = APIRouter()

REFRESH_SECONDS: Final = 2
MAX_FORM_BYTES: Final = 4096
_CSP: Final = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    duration=fmt.duration, cost=fmt.cost, clock=fmt.clock, outcome=fmt.outcome, state=fmt.state, clip=fmt.clip,
    percent=fmt.percent, rounds=fmt.rounds,
)


def web_url(api_url: str) -> str:
    """GitHub's web address for its REST address (github.com, GHES `/api/v3`, or the sandbox, which serves both)."""
    if api_url.rstrip("/") == "https://api.github.com":
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _html(body: str, status: int = 200, *, nonce: str = "") -> HTMLResponse:
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": _CSP.format(nonce=nonce or secrets.token_urlsafe(16)),
    }
    return HTMLResponse(body, status_code=status, headers=headers)


def _login_page(
    settings: Settings, *, status: int, problem: str | None = None, unsafe: bool = False
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = templates.get_template("login.html.j2").render(
        nonce=nonce, problem=problem, unsafe=unsafe_message(settings) if unsafe else None
    )
    response = _html(body, status, nonce=nonce)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def github_budget(services: Services) -> list[dict[str, Any]]:
    """What this process's gateway last heard of each installation's rate limit (`x-ratelimit-*`), and whether the
    queue sweep is deferred for it because the budget is low (`QueueService.deferred`)."""
    gateway = services.github
    remaining: dict[int, int] = dict(getattr(gateway, "rate_limit_remaining", None) or {})
    limits: dict[int, int] = dict(getattr(gateway, "rate_limit_limit", None) or {})
    queue = getattr(services, "queue", None)
    deferred: dict[int, Any] = dict(getattr(queue, "deferred", None) or {})
    low = getattr(gateway, "budget_low", None)
    return [
        {"installation": installation, "remaining": remaining[installation], "limit": limits.get(installation),
         "low": bool(low(installation)) if callable(low) else False, "sweep_deferred": installation in deferred}
        for installation in sorted(remaining)
    ]


async def _render_context(request: Request) -> dict[str, Any]:
    services = _services(request)
    view = await queries.overview(services.store, services.clock())
    return {
        "overview": view,
        "budget": github_budget(services),
        "statuses": DeliveryStatus.ALL,
        "web_url": web_url(services.settings.github_api_url),
        "refresh": REFRESH_SECONDS,
        "version": __version__,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request) -> HTMLResponse:
    settings = _services(request).settings
    found = access(request, settings)
    if found is Access.UNSAFE:
        return _login_page(settings, status=401, unsafe=True)
    if found is Access.LOGIN:
        return _login_page(settings, status=401)
    nonce = secrets.token_urlsafe(16)
    context = await _render_context(request)
    logout = settings.dashboard_token is not None and COOKIE in request.cookies
    # Read once per page, not by the 2-second poll of `/dashboard/live`: 30 days of figures move slowly.
    services = _services(request)
    figures = await outcomes.outcomes(services.store, services.clock())
    charts = {name: chart(figures.of(name)) for name in figures.repositories}
    body = templates.get_template("page.html.j2").render(
        nonce=nonce, logout=logout, outcomes=figures, charts=charts, **context
    )
    return _html(body, nonce=nonce)


@router.get("/dashboard/live", response_class=HTMLResponse, include_in_schema=False)
async def live(request: Request) -> HTMLResponse:
    """The tables alone, which the page's script swaps in every few seconds."""
    require_viewer(request, _services(request).settings)
    return _html(templates.get_template("live.html.j2").render(**await _render_context(request)))


@router.post("/dashboard/login", include_in_schema=False)
async def login(request: Request) -> Response:
    settings = _services(request).settings
    if access(request, settings) is Access.UNSAFE:
        return _login_page(settings, status=401, unsafe=True)
    if settings.dashboard_token is None:
        return RedirectResponse("/", status_code=303)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _login_page(settings, status=413, problem="That form is too large.")
    given = parse_qs(body.decode("utf-8", errors="replace")).get("token", [""])[0]
    if not token_matches(given, settings):
        return _login_page(settings, status=401, problem="That token is not right.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(settings.dashboard_token.get_secret_value()),
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings),
        path="/",
    )
    return response


@router.post("/dashboard/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/api/runs")
async def runs_json(
    request: Request,
    repo: str | None = Query(default=None, description="owner/name"),
    recent: int = Query(default=queries.RECENT_RUNS, ge=0, le=1000),
) -> list[dict[str, Any]]:
    """Every active run and the latest finished ones, newest first (of one repository with `repo`)."""
    services = _services(request)
    require_viewer(request, services.settings)
    _check_repo(repo)
    rows = await queries.run_rows(services.store, services.clock(), repo=repo, recent=recent)
    return [row.as_json() for row in rows]


@router.get("/api/queue")
async def queue_json(request: Request, repo: str | None = Query(default=None, description="owner/name")) -> list[
    dict[str, Any]
]:
    """Open pull requests per repository and base: the review order first (with `position`), then the others."""
    services = _services(request)
    require_viewer(request, services.settings)
    _check_repo(repo)
    rows = await queries.queue_rows(services.store, services.clock(), repo=repo)
    return [row.as_json() for row in rows]


@router.get("/api/outcomes")
async def outcomes_json(
    request: Request,
    repo: str | None = Query(default=None, description="owner/name"),
    days: int = Query(default=outcomes.WINDOW.days, ge=1, le=outcomes.MAX_WINDOW.days),
) -> dict[str, Any]:
    """Per repository and agent, over the last `days` days: runs, pull requests merged, closed unmerged and open,
    acceptance rate, median time to merge, cost per merged pull request, review rounds."""
    services = _services(request)
    require_viewer(request, services.settings)
    _check_repo(repo)
    found = await outcomes.outcomes(services.store, services.clock(), repo=repo, window=timedelta(days=days))
    return found.as_json()


def _check_repo(repo: str | None) -> None:
    if repo is not None and (repo.count("/") != 1 or not all(repo.split("/"))):
        raise HTTPException(400, "repo must be owner/name")
