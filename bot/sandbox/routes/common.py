"""What every REST route shares: JSON in and out, GitHub's pagination, and its authentication and access rules."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse

from bot.sandbox.auth import Principal, authenticate, grants
from bot.sandbox.engine import Engine, Json
from bot.sandbox.errors import ApiError, forbidden_integration, not_found
from bot.sandbox.state import ROLE_RANK, App, Repo, User

T = TypeVar("T")

# The least repository role a user (personal token) needs for a read or a write.
USER_LEVEL = {"read": "read", "write": "write", "admin": "admin"}

__all__ = ["Gate", "Json", "json_body", "paginate", "resolve_ref", "respond"]


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def json_body(request: Request) -> Json:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Problems parsing JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Problems parsing JSON")
    return data


def paginate(request: Request, items: Sequence[T]) -> tuple[list[T], dict[str, str]]:
    """GitHub's page-number pagination: `per_page` (≤100, default 30), `page`, and a `Link` header."""
    q = request.query_params
    try:
        per_page = min(max(int(q.get("per_page", "30")), 1), 100)
        page = max(int(q.get("page", "1")), 1)
    except ValueError:
        per_page, page = 30, 1
    last = max(1, math.ceil(len(items) / per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])
    base = str(request.url.replace(query=""))
    params = {k: v for k, v in q.items() if k not in ("page", "per_page")}

    def link(n: int, rel: str) -> str:
        return f'<{base}?{urlencode({**params, "per_page": per_page, "page": n})}>; rel="{rel}"'

    rels: list[str] = []
    if page > 1:
        rels += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        rels += [link(page + 1, "next"), link(last, "last")]
    return chunk, ({"Link": ", ".join(rels)} if rels else {})


async def resolve_ref(engine: Engine, target: Repo, ref: str | None) -> tuple[str, str]:
    """A branch, tag or sha (default: the default branch) as GitHub's REST API resolves it, or its 404."""
    name = ref or target.default_branch
    sha = await engine.git(target).resolve(name)
    if sha is None:
        raise ApiError(404, f"No commit found for the ref {name}")
    return name, sha


class Gate:
    """Who is asking, and whether they may reach a repository: the checks every router makes first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def principal(self, request: Request) -> Principal:
        cached = getattr(request.state, "principal", None)
        if isinstance(cached, Principal):
            return cached
        p = authenticate(self.engine.state, request.headers.get("authorization"), self.engine.clock())
        request.state.principal = p
        return p

    def app_only(self, request: Request) -> App:
        p = self.principal(request)
        if p.kind != "app" or p.app is None:
            raise ApiError(401, "A JSON web token could not be decoded")
        return p.app

    def access(
        self, request: Request, owner: str, name: str, resources: tuple[str, ...], level: str = "read"
    ) -> tuple[Principal, Repo, User]:
        """Who may do what on which repository, as GitHub decides it (404 hides what you cannot see)."""
        p = self.principal(request)
        repo = self.engine.state.repo(owner, name)
        if repo is None:
            raise not_found()
        if p.kind == "anonymous":
            if repo.private:
                raise not_found()
            if level != "read":
                raise ApiError(401, "Requires authentication")
            return p, repo, self.engine.ghost
        if p.kind == "app":
            raise ApiError(403, "Resource not accessible by integration")
        if p.kind == "user":
            assert p.user is not None
            role = self.engine.repos.role_of(repo, p.user)
            if ROLE_RANK[role] < ROLE_RANK["read"]:
                raise not_found()
            if ROLE_RANK[role] < ROLE_RANK[USER_LEVEL[level]]:
                raise ApiError(
                    403,
                    "Must have admin rights to Repository."
                    if level == "admin"
                    else f"Permission to {repo.full_name} denied to {p.user.login}.",
                )
            return p, repo, p.user
        assert p.token is not None
        assert p.installation is not None
        assert p.app is not None
        if not self.engine.identity.token_covers(p.token, p.installation, repo):
            if repo.private:
                raise not_found()
            if level != "read":
                raise forbidden_integration()
            return p, repo, p.app.bot
        if resources and not grants(p.token.permissions, resources, level):
            raise forbidden_integration()
        return p, repo, p.app.bot
