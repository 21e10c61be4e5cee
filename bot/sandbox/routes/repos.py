"""Repositories and git data over REST: the repository, contents, branches, refs, commits, compare, collaborators."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine, RefUpdate
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.git import ZERO_SHA
from bot.sandbox.routes.common import Gate, json_body, paginate, resolve_ref, respond
from bot.sandbox.state import ROLE_RANK


def build_router(engine: Engine) -> APIRouter:
    """Routes for a repository and its git objects (smart-HTTP git itself is `bot.sandbox.githttp`)."""
    router = APIRouter()
    gate = Gate(engine)

    @router.get("/repos/{owner}/{repo}")
    async def get_repo(request: Request, owner: str, repo: str) -> Response:
        p, target, who = gate.access(request, owner, repo, ("metadata",))
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
        out = P.repository(engine.urls, target, open_issues=open_issues, permissions=perms)
        return respond(out)

    async def contents(request: Request, owner: str, repo: str, path: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        ref, sha = await resolve_ref(engine, target, request.query_params.get("ref"))
        bare = engine.git(target)
        entry = await bare.entry(sha, path)
        if entry is None:
            raise not_found()
        clean = path.strip("/")
        if entry.type == "tree":
            items = [
                P.content_entry(engine.urls, target, e.path, e.sha, "dir" if e.type == "tree" else "file", e.size, ref)
                for e in await bare.list_tree(entry.sha, clean)
            ]
            return respond(items)
        if entry.type != "blob":
            raise not_found()
        data = await bare.blob(entry.sha)
        out = P.content_entry(engine.urls, target, clean, entry.sha, "file", len(data), ref)
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
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        branches = await engine.git(target).branches()
        items = [
            P.short_branch(engine.urls, target, name, sha, name in target.protection)
            for name, sha in sorted(branches.items())
        ]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    @router.get("/repos/{owner}/{repo}/branches/{branch:path}")
    async def get_branch(request: Request, owner: str, repo: str, branch: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        bare = engine.git(target)
        sha = await bare.ref_sha(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        out = P.branch(engine.urls, target, branch, await bare.commit_info(sha))
        out["protected"] = branch in target.protection
        return respond(out)

    def full_ref(ref: str) -> str:
        return ref if ref.startswith("refs/") else f"refs/{ref}"

    @router.get("/repos/{owner}/{repo}/git/ref/{ref:path}")
    async def get_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        name = full_ref(ref)
        sha = (await engine.git(target).refs(name)).get(name)
        if sha is None:
            raise not_found()
        return respond(P.git_ref(engine.urls, target, name, sha))

    @router.get("/repos/{owner}/{repo}/git/matching-refs/{ref:path}")
    async def matching_refs(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        prefix = full_ref(ref)
        refs = await engine.git(target).refs("refs/")
        return respond([P.git_ref(engine.urls, target, n, s) for n, s in sorted(refs.items()) if n.startswith(prefix)])

    @router.post("/repos/{owner}/{repo}/git/refs")
    async def create_ref(request: Request, owner: str, repo: str) -> Response:
        _, target, who = gate.access(request, owner, repo, ("contents",), "write")
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
        return respond(
            P.git_ref(engine.urls, target, ref, sha), 201, {"Location": f"{engine.urls.repo(target)}/git/{ref}"}
        )

    @router.patch("/repos/{owner}/{repo}/git/refs/{ref:path}")
    async def update_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, who = gate.access(request, owner, repo, ("contents",), "write")
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
        return respond(P.git_ref(engine.urls, target, name, sha))

    @router.delete("/repos/{owner}/{repo}/git/refs/{ref:path}")
    async def delete_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, who = gate.access(request, owner, repo, ("contents",), "write")
        name = full_ref(ref)
        bare = engine.git(target)
        async with engine.repo_lock(target):
            old = await bare.ref_sha(name)
            if old is None:
                raise validation_failed(message="Reference does not exist")
            await bare.delete_ref(name, old)
        await engine.repos.after_push(target, [RefUpdate(name, old, ZERO_SHA)], who)
        return Response(status_code=204)

    @router.get("/repos/{owner}/{repo}/commits/{ref:path}")
    async def get_commit(request: Request, owner: str, repo: str, ref: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
        bare = engine.git(target)
        sha = await bare.resolve(ref)
        if sha is None:
            raise validation_failed(message=f"No commit found for SHA: {ref}")
        info = await bare.commit_info(sha)
        files = await bare.changed_files(info.parents[0], sha) if info.parents else []
        return respond(P.commit(engine.urls, target, info, files=files))

    @router.get("/repos/{owner}/{repo}/compare/{basehead:path}")
    async def compare(request: Request, owner: str, repo: str, basehead: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("contents",))
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
        commits = [P.commit(engine.urls, target, await bare.commit_info(c)) for c in ahead[:250]]
        return respond(
            {
                "url": f"{engine.urls.repo(target)}/compare/{basehead}",
                "html_url": f"{engine.urls.repo_html(target)}/compare/{basehead}",
                "permalink_url": f"{engine.urls.repo_html(target)}/compare/{base[:7]}...{head[:7]}",
                "diff_url": f"{engine.urls.repo_html(target)}/compare/{basehead}.diff",
                "patch_url": f"{engine.urls.repo_html(target)}/compare/{basehead}.patch",
                "base_commit": P.commit(engine.urls, target, await bare.commit_info(base)),
                "merge_base_commit": P.commit(engine.urls, target, await bare.commit_info(merge_base)),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": commits,
                "files": [P.diff_entry(engine.urls, target, head, f) for f in files],
            }
        )

    @router.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
    async def collaborator_permission(request: Request, owner: str, repo: str, username: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("metadata",))
        who = engine.state.user(username)
        if who is None:
            raise not_found()
        role = engine.repos.role_of(target, who)
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        user_json = P.user(engine.urls, who)
        user_json["permissions"] = {
            "admin": role == "admin",
            "maintain": ROLE_RANK[role] >= 4,
            "push": ROLE_RANK[role] >= 3,
            "triage": ROLE_RANK[role] >= 2,
            "pull": ROLE_RANK[role] >= 1,
        }
        user_json["role_name"] = role
        return respond({"permission": permission, "role_name": role, "user": user_json})

    return router
