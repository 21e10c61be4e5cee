"""GitHub's REST API, as much of it as Kickoff uses: real paths, shapes, status codes and error bodies."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bot.sandbox import payloads as P
from bot.sandbox.auth import Principal, authenticate, grants
from bot.sandbox.engine import Engine, RefUpdate
from bot.sandbox.errors import ApiError, forbidden_integration, not_found, validation_failed
from bot.sandbox.git import ZERO_SHA
from bot.sandbox.state import ROLE_RANK, App, CheckRun, Comment, Installation, Issue, Repo, User

Json = dict[str, Any]
T = TypeVar("T")

# The least repository role a user (personal token) needs for a read or a write.
USER_LEVEL = {"read": "read", "write": "write", "admin": "admin"}


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


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def urls() -> P.Urls:
        return engine.urls

    # ------------------------------------------------------------ authentication and access

    def principal(request: Request) -> Principal:
        cached = getattr(request.state, "principal", None)
        if isinstance(cached, Principal):
            return cached
        p = authenticate(engine.state, request.headers.get("authorization"), engine.clock())
        request.state.principal = p
        return p

    def app_only(request: Request) -> App:
        p = principal(request)
        if p.kind != "app" or p.app is None:
            raise ApiError(401, "A JSON web token could not be decoded")
        return p.app

    def access(
        request: Request, owner: str, name: str, resources: tuple[str, ...], level: str = "read"
    ) -> tuple[Principal, Repo, User]:
        """Who may do what on which repository, as GitHub decides it (404 hides what you cannot see)."""
        p = principal(request)
        repo = engine.state.repo(owner, name)
        if repo is None:
            raise not_found()
        if p.kind == "anonymous":
            if repo.private:
                raise not_found()
            if level != "read":
                raise ApiError(401, "Requires authentication")
            return p, repo, engine.ghost
        if p.kind == "app":
            raise ApiError(403, "Resource not accessible by integration")
        if p.kind == "user":
            assert p.user is not None
            role = engine.repos.role_of(repo, p.user)
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
        if not engine.identity.token_covers(p.token, p.installation, repo):
            if repo.private:
                raise not_found()
            if level != "read":
                raise forbidden_integration()
            return p, repo, p.app.bot
        if resources and not grants(p.token.permissions, resources, level):
            raise forbidden_integration()
        return p, repo, p.app.bot

    # ------------------------------------------------------------ the App

    @router.get("/app")
    async def get_app(request: Request) -> Response:
        app = app_only(request)
        out = P.app(urls(), app)
        out["installations_count"] = sum(1 for i in engine.state.installations.values() if i.app_id == app.id)
        return respond(out)

    @router.get("/app/installations")
    async def list_installations(request: Request) -> Response:
        app = app_only(request)
        items = [P.installation(urls(), i, app) for i in engine.state.installations.values() if i.app_id == app.id]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    def installation_of(app: App, installation_id: int) -> Installation:
        inst = engine.state.installations.get(installation_id)
        if inst is None or inst.app_id != app.id:
            raise not_found()
        return inst

    @router.get("/app/installations/{installation_id}")
    async def get_installation(request: Request, installation_id: int) -> Response:
        app = app_only(request)
        return respond(P.installation(urls(), installation_of(app, installation_id), app))

    @router.post("/app/installations/{installation_id}/access_tokens")
    async def create_access_token(request: Request, installation_id: int) -> Response:
        app = app_only(request)
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
        app = app_only(request)
        target = engine.state.repo(owner, repo)
        if target is None:
            raise not_found()
        for inst in engine.state.installations.values():
            if inst.app_id == app.id and engine.identity.installation_covers(inst, target):
                return respond(P.installation(urls(), inst, app))
        raise not_found()

    @router.get("/installation/repositories")
    async def installation_repositories(request: Request) -> Response:
        p = principal(request)
        if p.kind != "installation" or p.installation is None or p.token is None:
            raise ApiError(403, "This endpoint can only be accessed with an installation access token")
        repos = [
            P.repository(urls(), r)
            for r in engine.identity.installation_repos(p.installation)
            if p.token.repo_ids is None or r.id in p.token.repo_ids
        ]
        page, headers = paginate(request, repos)
        selection = "selected" if p.token.repo_ids is not None else p.installation.repository_selection
        return respond(
            {"total_count": len(repos), "repository_selection": selection, "repositories": page}, headers=headers
        )

    @router.get("/rate_limit")
    async def rate_limit(request: Request) -> Response:
        principal(request)
        reset = int(engine.clock().timestamp()) + 3600
        core = {"limit": 5000, "used": 0, "remaining": 5000, "reset": reset}
        return respond({"resources": {"core": core, "search": core, "graphql": core}, "rate": core})

    # ------------------------------------------------------------ webhook deliveries (App JWT only)

    @router.get("/app/hook/deliveries")
    async def list_deliveries(request: Request) -> Response:
        app = app_only(request)
        q = request.query_params
        items = sorted(engine.webhooks.deliveries(app.id), key=lambda d: d.id, reverse=True)
        items = [d for d in items if d.status != "pending"]
        wanted = q.get("status")
        if wanted == "success":
            items = [d for d in items if d.succeeded]
        elif wanted == "failure":
            items = [d for d in items if not d.succeeded]
        try:
            per_page = min(max(int(q.get("per_page", "30")), 1), 100)
        except ValueError:
            per_page = 30
        cursor = q.get("cursor")
        if cursor:
            try:
                after = int(cursor)
            except ValueError as exc:
                raise validation_failed(message="Invalid cursor") from exc
            items = [d for d in items if d.id < after]
        page = items[:per_page]
        headers: dict[str, str] = {}
        if len(items) > per_page:
            params = {k: v for k, v in q.items() if k != "cursor"}
            params.update({"per_page": str(per_page), "cursor": str(page[-1].id)})
            headers["Link"] = f'<{request.url.replace(query="")}?{urlencode(params)}>; rel="next"'
        return respond([P.delivery_item(d) for d in page], headers=headers)

    @router.get("/app/hook/deliveries/{delivery_id}")
    async def get_delivery(request: Request, delivery_id: int) -> Response:
        app = app_only(request)
        d = engine.state.deliveries.get(delivery_id)
        if d is None or d.app_id != app.id:
            raise not_found()
        return respond(P.delivery(d, app.webhook_url, json.loads(d.body)))

    @router.post("/app/hook/deliveries/{delivery_id}/attempts")
    async def redeliver(request: Request, delivery_id: int) -> Response:
        app = app_only(request)
        engine.webhooks.redeliver(app, delivery_id)
        return respond({}, 202)

    # ------------------------------------------------------------ manifest flow

    @router.post("/app-manifests/{code}/conversions")
    async def convert_manifest(request: Request, code: str) -> Response:
        return respond(engine.identity.convert_manifest(code), 201)

    # ------------------------------------------------------------ repositories and git data

    @router.get("/repos/{owner}/{repo}")
    async def get_repo(request: Request, owner: str, repo: str) -> Response:
        p, target, who = access(request, owner, repo, ("metadata",))
        open_issues = sum(1 for i in target.issues.values() if i.state == "open")
        perms = None
        if p.kind == "user":
            rank = ROLE_RANK[engine.repos.role_of(target, who)]
            perms = {
                "admin": rank >= 5,
                "maintain": rank >= 4,
                "push": rank >= 3,
                "triage": rank >= 2,
                "pull": rank >= 1,
            }
        out = P.repository(urls(), target, open_issues=open_issues, permissions=perms)
        return respond(out)

    async def resolve_ref(target: Repo, ref: str | None) -> tuple[str, str]:
        name = ref or target.default_branch
        sha = await engine.git(target).resolve(name)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {name}")
        return name, sha

    async def contents(request: Request, owner: str, repo: str, path: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        ref, sha = await resolve_ref(target, request.query_params.get("ref"))
        bare = engine.git(target)
        entry = await bare.entry(sha, path)
        if entry is None:
            raise not_found()
        clean = path.strip("/")
        if entry.type == "tree":
            items = [
                P.content_entry(urls(), target, e.path, e.sha, "dir" if e.type == "tree" else "file", e.size, ref)
                for e in await bare.list_tree(entry.sha, clean)
            ]
            return respond(items)
        if entry.type != "blob":
            raise not_found()
        data = await bare.blob(entry.sha)
        out = P.content_entry(urls(), target, clean, entry.sha, "file", len(data), ref)
        out.update({"content": P.base64_lines(data), "encoding": "base64"})
        return respond(out)

    @router.get("/repos/{owner}/{repo}/contents/{path:path}")
    async def get_contents(request: Request, owner: str, repo: str, path: str) -> Response:
        return await contents(request, owner, repo, path)

    @router.get("/repos/{owner}/{repo}/contents")
    async def get_root_contents(request: Request, owner: str, repo: str) -> Response:
        return await contents(request, owner, repo, "")

    @router.get("/repos/{owner}/{repo}/branches")
    async def list_branches(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        branches = await engine.git(target).branches()
        items = [
            P.short_branch(urls(), target, name, sha, name in target.protection)
            for name, sha in sorted(branches.items())
        ]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    @router.get("/repos/{owner}/{repo}/branches/{branch:path}")
    async def get_branch(request: Request, owner: str, repo: str, branch: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        bare = engine.git(target)
        sha = await bare.ref_sha(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        out = P.branch(urls(), target, branch, await bare.commit_info(sha))
        out["protected"] = branch in target.protection
        return respond(out)

    def full_ref(ref: str) -> str:
        return ref if ref.startswith("refs/") else f"refs/{ref}"

    @router.get("/repos/{owner}/{repo}/git/ref/{ref:path}")
    async def get_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        name = full_ref(ref)
        sha = (await engine.git(target).refs(name)).get(name)
        if sha is None:
            raise not_found()
        return respond(P.git_ref(urls(), target, name, sha))

    @router.get("/repos/{owner}/{repo}/git/matching-refs/{ref:path}")
    async def matching_refs(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        prefix = full_ref(ref)
        refs = await engine.git(target).refs("refs/")
        return respond([P.git_ref(urls(), target, n, s) for n, s in sorted(refs.items()) if n.startswith(prefix)])

    @router.post("/repos/{owner}/{repo}/git/refs")
    async def create_ref(request: Request, owner: str, repo: str) -> Response:
        _, target, who = access(request, owner, repo, ("contents",), "write")
        body = await json_body(request)
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise validation_failed(message="Reference name must start with 'refs/' and have at least two slashes.")
        if not isinstance(sha, str) or await engine.git(target).resolve(sha) != sha:
            raise validation_failed(message="Object does not exist")
        async with engine.repo_lock(target):
            if not await engine.git(target).update_ref(ref, sha, ZERO_SHA):
                raise validation_failed(message="Reference already exists")
        await engine.repos.after_push(target, [RefUpdate(ref, ZERO_SHA, sha)], who)
        return respond(P.git_ref(urls(), target, ref, sha), 201, {"Location": f"{urls().repo(target)}/git/{ref}"})

    @router.patch("/repos/{owner}/{repo}/git/refs/{ref:path}")
    async def update_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, who = access(request, owner, repo, ("contents",), "write")
        body = await json_body(request)
        name = full_ref(ref)
        sha, force = body.get("sha"), bool(body.get("force", False))
        bare = engine.git(target)
        if not isinstance(sha, str) or await bare.resolve(sha) != sha:
            raise validation_failed(message="Object does not exist")
        async with engine.repo_lock(target):
            old = await bare.ref_sha(name)
            if old is None:
                raise validation_failed(message="Reference does not exist")
            if not force and not await bare.is_ancestor(old, sha):
                raise validation_failed(message="Update is not a fast forward")
            if not await bare.update_ref(name, sha, old):
                raise ApiError(409, "Reference cannot be updated")
        if old != sha:
            await engine.repos.after_push(target, [RefUpdate(name, old, sha)], who)
        return respond(P.git_ref(urls(), target, name, sha))

    @router.delete("/repos/{owner}/{repo}/git/refs/{ref:path}")
    async def delete_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, who = access(request, owner, repo, ("contents",), "write")
        name = full_ref(ref)
        bare = engine.git(target)
        async with engine.repo_lock(target):
            old = await bare.ref_sha(name)
            if old is None:
                raise validation_failed(message="Reference does not exist")
            await bare.delete_ref(name, old)
        await engine.repos.after_push(target, [RefUpdate(name, old, ZERO_SHA)], who)
        return Response(status_code=204)

    # ------------------------------------------------------------ checks and statuses (before /commits/{ref})

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/check-runs")
    async def list_check_runs(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("checks",))
        _, sha = await resolve_ref(target, ref)
        q = request.query_params
        runs = [r for r in engine.state.check_runs.values() if r.repo_id == target.id and r.head_sha == sha]
        if q.get("check_name"):
            runs = [r for r in runs if r.name == q["check_name"]]
        if q.get("status"):
            runs = [r for r in runs if r.status == q["status"]]
        if q.get("app_id"):
            runs = [r for r in runs if str(r.app_id) == q["app_id"]]
        runs.sort(key=lambda r: r.id, reverse=True)
        if q.get("filter", "latest") == "latest":
            seen: set[tuple[int, str]] = set()
            latest = []
            for r in runs:
                if (r.app_id, r.name) not in seen:
                    seen.add((r.app_id, r.name))
                    latest.append(r)
            runs = latest
        page, headers = paginate(request, runs)
        items = [await engine.checks.check_run_json(target, r) for r in page]
        return respond({"total_count": len(runs), "check_runs": items}, headers=headers)

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/check-suites")
    async def list_check_suites(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("checks",))
        _, sha = await resolve_ref(target, ref)
        q = request.query_params
        suites = [s for s in engine.state.check_suites.values() if s.repo_id == target.id and s.head_sha == sha]
        if q.get("app_id"):
            suites = [s for s in suites if str(s.app_id) == q["app_id"]]
        if q.get("check_name"):
            names = {r.suite_id for r in engine.state.check_runs.values() if r.name == q["check_name"]}
            suites = [s for s in suites if s.id in names]
        page, headers = paginate(request, suites)
        items = [await engine.checks.check_suite_json(target, s) for s in page]
        return respond({"total_count": len(suites), "check_suites": items}, headers=headers)

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/status")
    async def combined_status(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("statuses",))
        _, sha = await resolve_ref(target, ref)
        latest = engine.checks.latest_statuses(target, sha)
        page, headers = paginate(request, latest)
        return respond(
            {
                "state": P.combined_state(latest),
                "statuses": [P.commit_status(urls(), target, s) for s in page],
                "sha": sha,
                "total_count": len(latest),
                "repository": P.repository(urls(), target),
                "commit_url": f"{urls().repo(target)}/commits/{sha}",
                "url": f"{urls().repo(target)}/commits/{sha}/status",
            },
            headers=headers,
        )

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/statuses")
    async def list_statuses(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("statuses",))
        _, sha = await resolve_ref(target, ref)
        items = sorted(
            (s for s in engine.state.statuses if s.repo_id == target.id and s.sha == sha),
            key=lambda s: s.id,
            reverse=True,
        )
        page, headers = paginate(request, items)
        return respond([P.commit_status(urls(), target, s) for s in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}")
    async def get_commit(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        bare = engine.git(target)
        sha = await bare.resolve(ref)
        if sha is None:
            raise validation_failed(message=f"No commit found for SHA: {ref}")
        info = await bare.commit_info(sha)
        files = await bare.changed_files(info.parents[0], sha) if info.parents else []
        return respond(P.commit(urls(), target, info, files=files))

    @router.get("/repos/{owner}/{repo}/compare/{basehead:path}")
    async def compare(request: Request, owner: str, repo: str, basehead: str) -> Response:
        _, target, _ = access(request, owner, repo, ("contents",))
        base_name, sep, head_name = basehead.partition("...")
        if not sep:
            raise not_found()
        bare = engine.git(target)
        base, head = await bare.resolve(base_name), await bare.resolve(head_name)
        if base is None or head is None:
            raise not_found()
        merge_base = await bare.merge_base(base, head)
        if merge_base is None:
            raise ApiError(404, f"No common ancestor between {base_name} and {head_name}.")
        ahead = await bare.rev_list(base, head)
        behind = await bare.rev_list(head, base)
        status = (
            "identical"
            if not ahead and not behind
            else "ahead"
            if not behind
            else "behind"
            if not ahead
            else "diverged"
        )
        files = await bare.changed_files(merge_base, head)
        commits = [P.commit(urls(), target, await bare.commit_info(c)) for c in ahead[:250]]
        return respond(
            {
                "url": f"{urls().repo(target)}/compare/{basehead}",
                "html_url": f"{urls().repo_html(target)}/compare/{basehead}",
                "permalink_url": f"{urls().repo_html(target)}/compare/{base[:7]}...{head[:7]}",
                "diff_url": f"{urls().repo_html(target)}/compare/{basehead}.diff",
                "patch_url": f"{urls().repo_html(target)}/compare/{basehead}.patch",
                "base_commit": P.commit(urls(), target, await bare.commit_info(base)),
                "merge_base_commit": P.commit(urls(), target, await bare.commit_info(merge_base)),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": commits,
                "files": [P.diff_entry(urls(), target, head, f) for f in files],
            }
        )

    @router.post("/repos/{owner}/{repo}/check-runs")
    async def create_check_run(request: Request, owner: str, repo: str) -> Response:
        p, target, _ = access(request, owner, repo, ("checks",), "write")
        if p.kind != "installation" or p.app is None:
            raise ApiError(403, "You must authenticate via a GitHub App.")
        run = await engine.checks.create_check_run(target, p.app, await json_body(request))
        return respond(await engine.checks.check_run_json(target, run), 201)

    def find_run(target: Repo, check_run_id: int) -> CheckRun:
        run = engine.state.check_runs.get(check_run_id)
        if run is None or run.repo_id != target.id:
            raise not_found()
        return run

    @router.get("/repos/{owner}/{repo}/check-runs/{check_run_id}")
    async def get_check_run(request: Request, owner: str, repo: str, check_run_id: int) -> Response:
        _, target, _ = access(request, owner, repo, ("checks",))
        return respond(await engine.checks.check_run_json(target, find_run(target, check_run_id)))

    @router.patch("/repos/{owner}/{repo}/check-runs/{check_run_id}")
    async def update_check_run(request: Request, owner: str, repo: str, check_run_id: int) -> Response:
        p, target, _ = access(request, owner, repo, ("checks",), "write")
        run = find_run(target, check_run_id)
        if p.app is None or run.app_id != p.app.id:
            raise forbidden_integration()
        await engine.checks.update_check_run(target, run, await json_body(request))
        return respond(await engine.checks.check_run_json(target, run))

    @router.post("/repos/{owner}/{repo}/check-runs/{check_run_id}/rerequest")
    async def rerequest_check_run(request: Request, owner: str, repo: str, check_run_id: int) -> Response:
        _, target, who = access(request, owner, repo, ("checks",), "write")
        await engine.checks.rerequest_check_run(target, find_run(target, check_run_id), who)
        return respond({}, 201)

    @router.get("/repos/{owner}/{repo}/check-suites/{check_suite_id}")
    async def get_check_suite(request: Request, owner: str, repo: str, check_suite_id: int) -> Response:
        _, target, _ = access(request, owner, repo, ("checks",))
        suite = engine.state.check_suites.get(check_suite_id)
        if suite is None or suite.repo_id != target.id:
            raise not_found()
        return respond(await engine.checks.check_suite_json(target, suite))

    @router.post("/repos/{owner}/{repo}/statuses/{sha}")
    async def create_status(request: Request, owner: str, repo: str, sha: str) -> Response:
        _, target, who = access(request, owner, repo, ("statuses",), "write")
        st = await engine.checks.create_status(target, who, sha, await json_body(request))
        return respond(P.commit_status(urls(), target, st), 201)

    # ------------------------------------------------------------ collaborators

    @router.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
    async def collaborator_permission(request: Request, owner: str, repo: str, username: str) -> Response:
        _, target, _ = access(request, owner, repo, ("metadata",))
        who = engine.state.user(username)
        if who is None:
            raise not_found()
        role = engine.repos.role_of(target, who)
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        user_json = P.user(urls(), who)
        user_json["permissions"] = {
            "admin": role == "admin",
            "maintain": ROLE_RANK[role] >= 4,
            "push": ROLE_RANK[role] >= 3,
            "triage": ROLE_RANK[role] >= 2,
            "pull": ROLE_RANK[role] >= 1,
        }
        user_json["role_name"] = role
        return respond({"permission": permission, "role_name": role, "user": user_json})

    # ------------------------------------------------------------ issues

    def issue_resources(iss: Issue | None) -> tuple[str, ...]:
        return ("issues", "pull_requests") if iss is not None and iss.pull is not None else ("issues",)

    def issue_access(request: Request, owner: str, repo: str, number: int, level: str) -> tuple[Repo, Issue, User]:
        target = engine.state.repo(owner, repo)
        iss = target.issues.get(number) if target else None
        _, target, who = access(request, owner, repo, issue_resources(iss), level)
        if iss is None:
            raise not_found()
        return target, iss, who

    def string_list(body: Json, key: str) -> list[str] | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise validation_failed({"resource": "Issue", "code": "invalid", "field": key})
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                out.append(item["name"])
            else:
                raise validation_failed({"resource": "Issue", "code": "invalid", "field": key})
        return out

    @router.post("/repos/{owner}/{repo}/issues")
    async def create_issue(request: Request, owner: str, repo: str) -> Response:
        _, target, who = access(request, owner, repo, ("issues",), "write")
        body = await json_body(request)
        title = body.get("title")
        if not isinstance(title, str | int) or title == "":
            raise validation_failed({"resource": "Issue", "code": "missing_field", "field": "title"})
        iss = engine.issues.create_issue(target, who, str(title), body.get("body"), string_list(body, "labels") or [])
        assignees = string_list(body, "assignees")
        if assignees:
            iss.assignees = [engine.user(a) for a in assignees]
        return respond(
            engine.issues.issue_json(target, iss), 201, {"Location": f"{urls().repo(target)}/issues/{iss.number}"}
        )

    @router.get("/repos/{owner}/{repo}/issues")
    async def list_issues(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("issues",))
        q = request.query_params
        state = q.get("state", "open")
        items = [i for i in target.issues.values() if state == "all" or i.state == state]
        if q.get("labels"):
            wanted = {name.strip().lower() for name in q["labels"].split(",")}
            items = [i for i in items if wanted <= {n.lower() for n in i.labels}]
        items.sort(key=lambda i: i.number, reverse=q.get("direction", "desc") == "desc")
        page, headers = paginate(request, items)
        return respond([engine.issues.issue_json(target, i) for i in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/issues/comments")
    async def list_repo_comments(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("issues",))
        items = sorted((c for c in engine.state.comments.values() if c.repo_id == target.id), key=lambda c: c.id)
        page, headers = paginate(request, items)
        return respond([engine.issues.comment_json(target, c) for c in page], headers=headers)

    def comment_access(
        request: Request, owner: str, repo: str, comment_id: int, level: str
    ) -> tuple[Repo, Comment, User]:
        target = engine.state.repo(owner, repo)
        c = engine.state.comments.get(comment_id)
        iss = target.issues.get(c.issue_number) if target and c and c.repo_id == target.id else None
        _, target, who = access(request, owner, repo, issue_resources(iss), level)
        if c is None or c.repo_id != target.id:
            raise not_found()
        return target, c, who

    @router.get("/repos/{owner}/{repo}/issues/comments/{comment_id}")
    async def get_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        target, c, _ = comment_access(request, owner, repo, comment_id, "read")
        return respond(engine.issues.comment_json(target, c))

    @router.patch("/repos/{owner}/{repo}/issues/comments/{comment_id}")
    async def update_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        target, c, who = comment_access(request, owner, repo, comment_id, "write")
        body = await json_body(request)
        if not isinstance(body.get("body"), str):
            raise validation_failed({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        engine.issues.edit_comment(target, c, who, body["body"])
        return respond(engine.issues.comment_json(target, c))

    @router.delete("/repos/{owner}/{repo}/issues/comments/{comment_id}")
    async def delete_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        target, c, who = comment_access(request, owner, repo, comment_id, "write")
        engine.issues.delete_comment(target, c, who)
        return Response(status_code=204)

    def reactions_page(request: Request, reactions: list[Any]) -> Response:
        wanted = request.query_params.get("content")
        page, headers = paginate(request, [r for r in reactions if not wanted or r.content == wanted])
        return respond([P.reaction(urls(), r) for r in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
    async def list_comment_reactions(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        _, c, _ = comment_access(request, owner, repo, comment_id, "read")
        return reactions_page(request, c.reactions)

    @router.post("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
    async def create_comment_reaction(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        _, c, who = comment_access(request, owner, repo, comment_id, "write")
        body = await json_body(request)
        r, created = engine.issues.add_reaction(c.reactions, who, str(body.get("content")))
        return respond(P.reaction(urls(), r), 201 if created else 200)

    @router.delete("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions/{reaction_id}")
    async def delete_comment_reaction(
        request: Request, owner: str, repo: str, comment_id: int, reaction_id: int
    ) -> Response:
        _, c, _ = comment_access(request, owner, repo, comment_id, "write")
        c.reactions[:] = [r for r in c.reactions if r.id != reaction_id]
        return Response(status_code=204)

    @router.get("/repos/{owner}/{repo}/issues/{number}")
    async def get_issue(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = issue_access(request, owner, repo, number, "read")
        return respond(engine.issues.issue_json(target, iss))

    @router.patch("/repos/{owner}/{repo}/issues/{number}")
    async def update_issue(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = issue_access(request, owner, repo, number, "write")
        body = await json_body(request)
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            raise validation_failed({"resource": "Issue", "code": "invalid", "field": "state"})
        title = body.get("title")
        await engine.issues.edit_issue(
            target,
            iss,
            who,
            title=str(title) if title is not None else None,
            body=body.get("body"),
            body_set="body" in body,
            state=state,
            state_reason=body.get("state_reason"),
            labels=string_list(body, "labels"),
            assignees=string_list(body, "assignees"),
        )
        return respond(engine.issues.issue_json(target, iss))

    @router.get("/repos/{owner}/{repo}/issues/{number}/comments")
    async def list_comments(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = issue_access(request, owner, repo, number, "read")
        items = [engine.state.comments[cid] for cid in iss.comment_ids]
        page, headers = paginate(request, items)
        return respond([engine.issues.comment_json(target, c) for c in page], headers=headers)

    @router.post("/repos/{owner}/{repo}/issues/{number}/comments")
    async def create_comment(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = issue_access(request, owner, repo, number, "write")
        body = await json_body(request)
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise validation_failed({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        if len(text) > 65536:
            raise validation_failed(
                {
                    "resource": "IssueComment",
                    "code": "custom",
                    "field": "body",
                    "message": "body is too long (maximum is 65536 characters)",
                }
            )
        c = engine.issues.create_comment(target, iss, who, text)
        return respond(
            engine.issues.comment_json(target, c), 201, {"Location": f"{urls().repo(target)}/issues/comments/{c.id}"}
        )

    @router.get("/repos/{owner}/{repo}/issues/{number}/labels")
    async def list_issue_labels(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = issue_access(request, owner, repo, number, "read")
        items = [P.label(urls(), target, target.labels[n.lower()]) for n in iss.labels]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    async def set_or_add_labels(request: Request, owner: str, repo: str, number: int, replace: bool) -> Response:
        target, iss, who = issue_access(request, owner, repo, number, "write")
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ApiError(400, "Problems parsing JSON") from exc
        names = string_list({"labels": data}, "labels") if isinstance(data, list) else string_list(data, "labels")
        if names is None:
            raise validation_failed({"resource": "Label", "code": "missing_field", "field": "labels"})
        if replace:
            await engine.issues.edit_issue(target, iss, who, labels=names)
        else:
            await engine.issues.add_labels(target, iss, names, who)
        return respond([P.label(urls(), target, target.labels[n.lower()]) for n in iss.labels])

    @router.post("/repos/{owner}/{repo}/issues/{number}/labels")
    async def add_issue_labels(request: Request, owner: str, repo: str, number: int) -> Response:
        return await set_or_add_labels(request, owner, repo, number, replace=False)

    @router.put("/repos/{owner}/{repo}/issues/{number}/labels")
    async def set_issue_labels(request: Request, owner: str, repo: str, number: int) -> Response:
        return await set_or_add_labels(request, owner, repo, number, replace=True)

    @router.delete("/repos/{owner}/{repo}/issues/{number}/labels")
    async def clear_issue_labels(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = issue_access(request, owner, repo, number, "write")
        await engine.issues.edit_issue(target, iss, who, labels=[])
        return Response(status_code=204)

    @router.delete("/repos/{owner}/{repo}/issues/{number}/labels/{name:path}")
    async def remove_issue_label(request: Request, owner: str, repo: str, number: int, name: str) -> Response:
        target, iss, who = issue_access(request, owner, repo, number, "write")
        await engine.issues.remove_issue_label(target, iss, name, who)
        return respond([P.label(urls(), target, target.labels[n.lower()]) for n in iss.labels])

    @router.get("/repos/{owner}/{repo}/issues/{number}/reactions")
    async def list_issue_reactions(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, _ = issue_access(request, owner, repo, number, "read")
        return reactions_page(request, iss.reactions)

    @router.post("/repos/{owner}/{repo}/issues/{number}/reactions")
    async def create_issue_reaction(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, who = issue_access(request, owner, repo, number, "write")
        body = await json_body(request)
        r, created = engine.issues.add_reaction(iss.reactions, who, str(body.get("content")))
        return respond(P.reaction(urls(), r), 201 if created else 200)

    @router.delete("/repos/{owner}/{repo}/issues/{number}/reactions/{reaction_id}")
    async def delete_issue_reaction(request: Request, owner: str, repo: str, number: int, reaction_id: int) -> Response:
        _, iss, _ = issue_access(request, owner, repo, number, "write")
        iss.reactions[:] = [r for r in iss.reactions if r.id != reaction_id]
        return Response(status_code=204)

    # ------------------------------------------------------------ labels

    @router.get("/repos/{owner}/{repo}/labels")
    async def list_labels(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("issues", "pull_requests"))
        items = [P.label(urls(), target, lab) for lab in target.labels.values()]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    @router.get("/repos/{owner}/{repo}/labels/{name:path}")
    async def get_label(request: Request, owner: str, repo: str, name: str) -> Response:
        _, target, _ = access(request, owner, repo, ("issues", "pull_requests"))
        lab = target.labels.get(name.lower())
        if lab is None:
            raise not_found()
        return respond(P.label(urls(), target, lab))

    @router.post("/repos/{owner}/{repo}/labels")
    async def create_label(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("issues", "pull_requests"), "write")
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise validation_failed({"resource": "Label", "code": "missing_field", "field": "name"})
        if name.lower() in target.labels:
            raise validation_failed({"resource": "Label", "code": "already_exists", "field": "name"})
        color = str(body.get("color") or "ededed").lstrip("#")
        if len(color) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in color):
            raise validation_failed({"resource": "Label", "code": "invalid", "field": "color"})
        lab = engine.issues.ensure_label(target, name, color, body.get("description"))
        return respond(P.label(urls(), target, lab), 201)

    # ------------------------------------------------------------ pull requests

    def pull_access(
        request: Request,
        owner: str,
        repo: str,
        number: int,
        level: str,
        resources: tuple[str, ...] = ("pull_requests",),
    ) -> tuple[Repo, Issue, User]:
        _, target, who = access(request, owner, repo, resources, level)
        return target, engine.pulls.find_pull(target, number), who

    @router.post("/repos/{owner}/{repo}/pulls")
    async def create_pull(request: Request, owner: str, repo: str) -> Response:
        _, target, who = access(request, owner, repo, ("pull_requests",), "write")
        body = await json_body(request)
        head, base = body.get("head"), body.get("base")
        if not isinstance(head, str) or not head:
            raise validation_failed({"resource": "PullRequest", "code": "missing_field", "field": "head"})
        if not isinstance(base, str) or not base:
            raise validation_failed({"resource": "PullRequest", "code": "missing_field", "field": "base"})
        issue_number = body.get("issue")
        iss = await engine.pulls.create_pull(
            target,
            who,
            head=head,
            base=base,
            title=body.get("title"),
            body=body.get("body"),
            draft=bool(body.get("draft", False)),
            maintainer_can_modify=bool(body.get("maintainer_can_modify", True)),
            issue_number=issue_number if isinstance(issue_number, int) else None,
        )
        return respond(
            await engine.pulls.pull_json(target, iss), 201, {"Location": f"{urls().repo(target)}/pulls/{iss.number}"}
        )

    @router.get("/repos/{owner}/{repo}/pulls")
    async def list_pulls(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("pull_requests",))
        q = request.query_params
        state = q.get("state", "open")
        items = [i for i in target.issues.values() if i.pull is not None and (state == "all" or i.state == state)]
        if q.get("head"):
            head_owner, sep, head_branch = q["head"].rpartition(":")
            if not sep:
                head_branch = q["head"]
            if sep and head_owner.lower() != target.owner.login.lower():
                items = []
            items = [i for i in items if i.pull is not None and i.pull.head_ref == head_branch]
        if q.get("base"):
            items = [i for i in items if i.pull is not None and i.pull.base_ref == q["base"]]
        sort = q.get("sort", "created")
        direction = q.get("direction", "desc" if sort == "created" else "asc")
        key = (lambda i: i.updated_at) if sort == "updated" else (lambda i: i.number)
        items.sort(key=key, reverse=direction == "desc")
        page, headers = paginate(request, items)
        return respond([await engine.pulls.pull_json(target, i, simple=True) for i in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/pulls/comments")
    async def list_repo_review_comments(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = access(request, owner, repo, ("pull_requests",))
        items = []
        for iss in target.issues.values():
            if iss.pull is not None:
                items += [(iss.number, c) for c in iss.pull.review_comments]
        page, headers = paginate(request, items)
        return respond(
            [
                P.review_comment(urls(), target, n, c, association=engine.repos.association(target, c.user))
                for n, c in page
            ],
            headers=headers,
        )

    @router.get("/repos/{owner}/{repo}/pulls/{number}")
    async def get_pull(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        return respond(await engine.pulls.pull_json(target, iss))

    @router.patch("/repos/{owner}/{repo}/pulls/{number}")
    async def update_pull(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = pull_access(request, owner, repo, number, "write")
        body = await json_body(request)
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            raise validation_failed({"resource": "PullRequest", "code": "invalid", "field": "state"})
        mcm = body.get("maintainer_can_modify")
        await engine.pulls.update_pull(
            target,
            iss,
            who,
            title=body.get("title") if isinstance(body.get("title"), str) else None,
            body=body.get("body"),
            body_set="body" in body,
            state=state,
            base=body.get("base") if isinstance(body.get("base"), str) else None,
            maintainer_can_modify=mcm if isinstance(mcm, bool) else None,
        )
        return respond(await engine.pulls.pull_json(target, iss))

    @router.put("/repos/{owner}/{repo}/pulls/{number}/update-branch")
    async def update_branch(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = pull_access(request, owner, repo, number, "write")
        body = await json_body(request)
        expected = body.get("expected_head_sha")
        await engine.pulls.update_branch(target, iss, who, expected if isinstance(expected, str) else None)
        return respond(
            {"message": "Updating pull request branch.", "url": f"{urls().repo_html(target)}/pull/{iss.number}"}, 202
        )

    @router.put("/repos/{owner}/{repo}/pulls/{number}/merge")
    async def merge_pull(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = pull_access(request, owner, repo, number, "write", ("contents",))
        body = await json_body(request)
        sha = await engine.pulls.merge(
            target,
            iss,
            who,
            method=str(body.get("merge_method") or "merge"),
            sha=body.get("sha") if isinstance(body.get("sha"), str) else None,
            title=body.get("commit_title") if isinstance(body.get("commit_title"), str) else None,
            message=body.get("commit_message") if isinstance(body.get("commit_message"), str) else None,
        )
        return respond({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    @router.get("/repos/{owner}/{repo}/pulls/{number}/merge")
    async def is_merged(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        return Response(status_code=204) if iss.pull.merged else respond(not_found().body(), 404)

    @router.get("/repos/{owner}/{repo}/pulls/{number}/files")
    async def list_pull_files(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        facts = await engine.pulls.pull_facts(target, iss)
        bare = engine.git(target)
        merge_base = await bare.merge_base(facts.base_sha, facts.head_sha)
        files = await bare.changed_files(merge_base, facts.head_sha) if merge_base else []
        page, headers = paginate(request, files)
        return respond([P.diff_entry(urls(), target, facts.head_sha, f) for f in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/pulls/{number}/commits")
    async def list_pull_commits(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        facts = await engine.pulls.pull_facts(target, iss)
        bare = engine.git(target)
        merge_base = await bare.merge_base(facts.base_sha, facts.head_sha)
        shas = await bare.rev_list(merge_base, facts.head_sha)
        page, headers = paginate(request, shas)
        return respond([P.commit(urls(), target, await bare.commit_info(s)) for s in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def list_reviews(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        page, headers = paginate(request, iss.pull.reviews)
        return respond(
            [P.review(urls(), target, number, r, association=engine.repos.association(target, r.user)) for r in page],
            headers=headers,
        )

    @router.post("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def create_review(request: Request, owner: str, repo: str, number: int) -> Response:
        # Anyone who can read the repository may review (on a public one: anyone); an App needs pull_requests
        # write. Whose review counts is the review decision's business (`Engine.review_decision_counts`).
        level = "read" if principal(request).kind == "user" else "write"
        target, iss, who = pull_access(request, owner, repo, number, level)
        body = await json_body(request)
        comments = body.get("comments")
        review = await engine.pulls.submit_review(
            target,
            iss,
            who,
            event=body.get("event") if isinstance(body.get("event"), str) else None,
            body=body.get("body") if isinstance(body.get("body"), str) else None,
            commit_id=body.get("commit_id") if isinstance(body.get("commit_id"), str) else None,
            comments=[c for c in comments if isinstance(c, dict)] if isinstance(comments, list) else None,
        )
        return respond(P.review(urls(), target, number, review, association=engine.repos.association(target, who)))

    @router.get("/repos/{owner}/{repo}/pulls/{number}/requested_reviewers")
    async def list_requested_reviewers(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        return respond({"users": [P.user(urls(), r) for r in iss.pull.requested_reviewers], "teams": []})

    @router.post("/repos/{owner}/{repo}/pulls/{number}/requested_reviewers")
    async def request_reviewers(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, who = pull_access(request, owner, repo, number, "write")
        body = await json_body(request)
        reviewers = body.get("reviewers") or []
        if not isinstance(reviewers, list) or not all(isinstance(r, str) for r in reviewers):
            raise validation_failed({"resource": "PullRequest", "code": "invalid", "field": "reviewers"})
        for login in reviewers:
            found = engine.state.user(login)
            if found is None or engine.repos.role_of(target, found) in ("none",):
                raise validation_failed(
                    message="Reviews may only be requested from collaborators. One or more of the users or teams "
                    "you specified is not a collaborator of the " + f"{target.full_name} repository."
                )
        await engine.pulls.request_reviewers(target, iss, who, reviewers)
        return respond(await engine.pulls.pull_json(target, iss, simple=True), 201)

    @router.delete("/repos/{owner}/{repo}/pulls/{number}/requested_reviewers")
    async def remove_requested_reviewers(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "write")
        assert iss.pull is not None
        body = await json_body(request)
        drop = {str(r).lower() for r in body.get("reviewers") or []}
        iss.pull.requested_reviewers = [r for r in iss.pull.requested_reviewers if r.login.lower() not in drop]
        return respond(await engine.pulls.pull_json(target, iss, simple=True))

    @router.get("/repos/{owner}/{repo}/pulls/{number}/comments")
    async def list_review_comments(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        page, headers = paginate(request, iss.pull.review_comments)
        return respond(
            [
                P.review_comment(urls(), target, number, c, association=engine.repos.association(target, c.user))
                for c in page
            ],
            headers=headers,
        )

    return router
