"""Check runs, check suites and commit statuses, including the combined status of a ref."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine
from bot.sandbox.errors import ApiError, forbidden_integration, not_found
from bot.sandbox.routes.common import Gate, json_body, paginate, resolve_ref, respond
from bot.sandbox.state import CheckRun, Repo


def build_router(engine: Engine) -> APIRouter:
    """Routes for checks and statuses; included before the repository routes so `/commits/{ref}/check-runs` wins."""
    router = APIRouter()
    gate = Gate(engine)

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/check-runs")
    async def list_check_runs(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("checks",))
        _, sha = await resolve_ref(engine, target, ref)
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
        _, target, _ = gate.access(request, owner, repo, ("checks",))
        _, sha = await resolve_ref(engine, target, ref)
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
        _, target, _ = gate.access(request, owner, repo, ("statuses",))
        _, sha = await resolve_ref(engine, target, ref)
        latest = engine.checks.latest_statuses(target, sha)
        page, headers = paginate(request, latest)
        return respond(
            {
                "state": P.combined_state(latest),
                "statuses": [P.commit_status(engine.urls, target, s) for s in page],
                "sha": sha,
                "total_count": len(latest),
                "repository": P.repository(engine.urls, target),
                "commit_url": f"{engine.urls.repo(target)}/commits/{sha}",
                "url": f"{engine.urls.repo(target)}/commits/{sha}/status",
            },
            headers=headers,
        )

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}/statuses")
    async def list_statuses(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("statuses",))
        _, sha = await resolve_ref(engine, target, ref)
        items = sorted(
            (s for s in engine.state.statuses if s.repo_id == target.id and s.sha == sha),
            key=lambda s: s.id,
            reverse=True,
        )
        page, headers = paginate(request, items)
        return respond([P.commit_status(engine.urls, target, s) for s in page], headers=headers)

    @router.post("/repos/{owner}/{repo}/check-runs")
    async def create_check_run(request: Request, owner: str, repo: str) -> Response:
        p, target, _ = gate.access(request, owner, repo, ("checks",), "write")
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
        _, target, _ = gate.access(request, owner, repo, ("checks",))
        return respond(await engine.checks.check_run_json(target, find_run(target, check_run_id)))

    @router.patch("/repos/{owner}/{repo}/check-runs/{check_run_id}")
    async def update_check_run(request: Request, owner: str, repo: str, check_run_id: int) -> Response:
        p, target, _ = gate.access(request, owner, repo, ("checks",), "write")
        run = find_run(target, check_run_id)
        if p.app is None or run.app_id != p.app.id:
            raise forbidden_integration()
        await engine.checks.update_check_run(target, run, await json_body(request))
        return respond(await engine.checks.check_run_json(target, run))

    @router.post("/repos/{owner}/{repo}/check-runs/{check_run_id}/rerequest")
    async def rerequest_check_run(request: Request, owner: str, repo: str, check_run_id: int) -> Response:
        _, target, who = gate.access(request, owner, repo, ("checks",), "write")
        await engine.checks.rerequest_check_run(target, find_run(target, check_run_id), who)
        return respond({}, 201)

    @router.get("/repos/{owner}/{repo}/check-suites/{check_suite_id}")
    async def get_check_suite(request: Request, owner: str, repo: str, check_suite_id: int) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("checks",))
        suite = engine.state.check_suites.get(check_suite_id)
        if suite is None or suite.repo_id != target.id:
            raise not_found()
        return respond(await engine.checks.check_suite_json(target, suite))

    @router.post("/repos/{owner}/{repo}/statuses/{sha}")
    async def create_status(request: Request, owner: str, repo: str, sha: str) -> Response:
        _, target, who = gate.access(request, owner, repo, ("statuses",), "write")
        st = await engine.checks.create_status(target, who, sha, await json_body(request))
        return respond(P.commit_status(engine.urls, target, st), 201)

    return router
