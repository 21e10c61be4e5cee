"""Pull requests: opening, listing, updating, reviews, requested reviewers, merging, files and commits."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine
from bot.sandbox.errors import not_found, validation_failed
from bot.sandbox.routes.common import Gate, json_body, paginate, respond
from bot.sandbox.state import Issue, Repo, User


def build_router(engine: Engine) -> APIRouter:
    """Routes for pull requests and their reviews."""
    router = APIRouter()
    gate = Gate(engine)

    def pull_access(
        request: Request,
        owner: str,
        repo: str,
        number: int,
        level: str,
        resources: tuple[str, ...] = ("pull_requests",),
    ) -> tuple[Repo, Issue, User]:
        _, target, who = gate.access(request, owner, repo, resources, level)
        return target, engine.pulls.find_pull(target, number), who

    @router.post("/repos/{owner}/{repo}/pulls")
    async def create_pull(request: Request, owner: str, repo: str) -> Response:
        _, target, who = gate.access(request, owner, repo, ("pull_requests",), "write")
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
            await engine.pulls.pull_json(target, iss),
            201,
            {"Location": f"{engine.urls.repo(target)}/pulls/{iss.number}"},
        )

    @router.get("/repos/{owner}/{repo}/pulls")
    async def list_pulls(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("pull_requests",))
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
        _, target, _ = gate.access(request, owner, repo, ("pull_requests",))
        items = []
        for iss in target.issues.values():
            if iss.pull is not None:
                items += [(iss.number, c) for c in iss.pull.review_comments]
        page, headers = paginate(request, items)
        return respond(
            [
                P.review_comment(engine.urls, target, n, c, association=engine.repos.association(target, c.user))
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
            {"message": "Updating pull request branch.", "url": f"{engine.urls.repo_html(target)}/pull/{iss.number}"},
            202,
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
        return respond([P.diff_entry(engine.urls, target, facts.head_sha, f) for f in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/pulls/{number}/commits")
    async def list_pull_commits(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        facts = await engine.pulls.pull_facts(target, iss)
        bare = engine.git(target)
        merge_base = await bare.merge_base(facts.base_sha, facts.head_sha)
        shas = await bare.rev_list(merge_base, facts.head_sha)
        page, headers = paginate(request, shas)
        return respond([P.commit(engine.urls, target, await bare.commit_info(s)) for s in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def list_reviews(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        page, headers = paginate(request, iss.pull.reviews)
        return respond(
            [
                P.review(engine.urls, target, number, r, association=engine.repos.association(target, r.user))
                for r in page
            ],
            headers=headers,
        )

    @router.post("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def create_review(request: Request, owner: str, repo: str, number: int) -> Response:
        # Anyone who can read the repository may review (on a public one: anyone); an App needs pull_requests
        # write. Whose review counts is the review decision's business (`Pulls.review_decision_counts`).
        level = "read" if gate.principal(request).kind == "user" else "write"
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
        return respond(P.review(engine.urls, target, number, review, association=engine.repos.association(target, who)))

    @router.get("/repos/{owner}/{repo}/pulls/{number}/requested_reviewers")
    async def list_requested_reviewers(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, _ = pull_access(request, owner, repo, number, "read")
        assert iss.pull is not None
        return respond({"users": [P.user(engine.urls, r) for r in iss.pull.requested_reviewers], "teams": []})

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
                P.review_comment(engine.urls, target, number, c, association=engine.repos.association(target, c.user))
                for c in page
            ],
            headers=headers,
        )

    return router
