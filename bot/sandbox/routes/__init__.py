"""GitHub's REST API, as much of it as Kickoff uses: real paths, shapes, status codes and error bodies.

One router per resource, composed here. Order matters where paths overlap: the checks routes
(`/commits/{ref}/check-runs`, `/status`, ...) come before the repository's `/commits/{ref}`.
"""

from __future__ import annotations

from fastapi import APIRouter

from bot.sandbox.engine import Engine
from bot.sandbox.routes import checks, identity, issues, pulls, repos, webhooks


def build_router(engine: Engine) -> APIRouter:
    """Every REST route the sandbox serves, for one engine."""
    router = APIRouter()
    for resource in (identity, webhooks, checks, repos, issues, pulls):
        router.include_router(resource.build_router(engine))
    return router
