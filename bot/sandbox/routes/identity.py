"""The App and its installations: App JWT endpoints, installation tokens, the manifest conversion, rate limits."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.budget import budget_key
from bot.sandbox.engine import Engine
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.routes.common import Gate, json_body, paginate, respond
from bot.sandbox.state import App, Installation


def build_router(engine: Engine) -> APIRouter:
    """Routes an App (JWT) or an installation token uses to learn who it is and to get tokens."""
    router = APIRouter()
    gate = Gate(engine)

    @router.get("/app")
    async def get_app(request: Request) -> Response:
        app = gate.app_only(request)
        out = P.app(engine.urls, app)
        out["installations_count"] = sum(1 for i in engine.state.installations.values() if i.app_id == app.id)
        return respond(out)

    @router.get("/app/installations")
    async def list_installations(request: Request) -> Response:
        app = gate.app_only(request)
        items = [P.installation(engine.urls, i, app) for i in engine.state.installations.values() if i.app_id == app.id]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    def installation_of(app: App, installation_id: int) -> Installation:
        inst = engine.state.installations.get(installation_id)
        if inst is None or inst.app_id != app.id:
            raise not_found()
        return inst

    @router.get("/app/installations/{installation_id}")
    async def get_installation(request: Request, installation_id: int) -> Response:
        app = gate.app_only(request)
        return respond(P.installation(engine.urls, installation_of(app, installation_id), app))

    @router.post("/app/installations/{installation_id}/access_tokens")
    async def create_access_token(request: Request, installation_id: int) -> Response:
        app = gate.app_only(request)
        inst = installation_of(app, installation_id)
        body = await json_body(request)
        repositories, repository_ids, permissions = (
            body.get("repositories"),
            body.get("repository_ids"),
            body.get("permissions"),
        )
        if repositories is not None and not (
            isinstance(repositories, list) and all(isinstance(r, str) for r in repositories)
        ):
            raise validation_failed({"resource": "Installation", "code": "invalid", "field": "repositories"})
        if repository_ids is not None and not (
            isinstance(repository_ids, list) and all(isinstance(r, int) for r in repository_ids)
        ):
            raise validation_failed({"resource": "Installation", "code": "invalid", "field": "repository_ids"})
        if permissions is not None and not isinstance(permissions, dict):
            raise validation_failed({"resource": "Installation", "code": "invalid", "field": "permissions"})
        token = engine.identity.issue_token(
            inst, repositories=repositories, repository_ids=repository_ids, permissions=permissions
        )
        return respond(engine.identity.token_json(token), 201)

    @router.get("/repos/{owner}/{repo}/installation")
    async def get_repo_installation(request: Request, owner: str, repo: str) -> Response:
        app = gate.app_only(request)
        target = engine.state.repo(owner, repo)
        if target is None:
            raise not_found()
        for inst in engine.state.installations.values():
            if inst.app_id == app.id and engine.identity.installation_covers(inst, target):
                return respond(P.installation(engine.urls, inst, app))
        raise not_found()

    @router.delete("/installation/token")
    async def revoke_installation_token(request: Request) -> Response:
        p = gate.principal(request)
        if p.kind != "installation" or p.token is None:
            raise ApiError(401, "Bad credentials")
        engine.identity.revoke_token(p.token)
        return Response(status_code=204)

    @router.get("/installation/repositories")
    async def installation_repositories(request: Request) -> Response:
        p = gate.principal(request)
        if p.kind != "installation" or p.installation is None or p.token is None:
            raise ApiError(403, "This endpoint can only be accessed with an installation access token")
        repos = [
            P.repository(engine.urls, r)
            for r in engine.identity.installation_repos(p.installation)
            if p.token.repo_ids is None or r.id in p.token.repo_ids
        ]
        page, headers = paginate(request, repos)
        selection = "selected" if p.token.repo_ids is not None else p.installation.repository_selection
        return respond(
            {"total_count": len(repos), "repository_selection": selection, "repositories": page}, headers=headers
        )

    @router.get("/users/{username}")
    async def get_user(request: Request, username: str) -> Response:
        gate.principal(request)
        who = engine.state.user(username)
        if who is None:
            raise not_found()
        out = P.user(engine.urls, who)
        out.update(name=None, company=None, blog="", location=None, email=None, hireable=None, bio=None,
                   public_repos=0, public_gists=0, followers=0, following=0,
                   created_at="2020-01-01T00:00:00Z", updated_at="2020-01-01T00:00:00Z")
        return respond(out)

    @router.get("/rate_limit")
    async def rate_limit(request: Request) -> Response:
        key = budget_key(gate.principal(request))
        reset = int(engine.clock().timestamp()) + 3600
        core = {"limit": 5000, "used": 0, "remaining": 5000, "reset": reset}
        if key is not None:
            budget = engine.rate_limits.budget(key)
            core = {"limit": budget.limit, "used": budget.used, "remaining": budget.remaining,
                    "reset": math.ceil(budget.reset_at.timestamp())}
        return respond({"resources": {"core": core, "search": core, "graphql": core}, "rate": core})

    @router.post("/app-manifests/{code}/conversions")
    async def convert_manifest(request: Request, code: str) -> Response:
        return respond(engine.identity.convert_manifest(code), 201)

    return router
