"""Issues, issue comments, labels and reactions."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.routes.common import Gate, Json, json_body, paginate, respond
from bot.sandbox.state import Comment, Issue, Repo, User


def build_router(engine: Engine) -> APIRouter:
    """Routes for issues and what hangs off them."""
    router = APIRouter()
    gate = Gate(engine)

    def issue_resources(iss: Issue | None) -> tuple[str, ...]:
        return ("issues", "pull_requests") if iss is not None and iss.pull is not None else ("issues",)

    def issue_access(request: Request, owner: str, repo: str, number: int, level: str) -> tuple[Repo, Issue, User]:
        target = engine.state.repo(owner, repo)
        iss = target.issues.get(number) if target else None
        _, target, who = gate.access(request, owner, repo, issue_resources(iss), level)
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
        _, target, who = gate.access(request, owner, repo, ("issues",), "write")
        body = await json_body(request)
        title = body.get("title")
        if not isinstance(title, str | int) or title == "":
            raise validation_failed({"resource": "Issue", "code": "missing_field", "field": "title"})
        iss = engine.issues.create_issue(target, who, str(title), body.get("body"), string_list(body, "labels") or [])
        assignees = string_list(body, "assignees")
        if assignees:
            iss.assignees = [engine.user(a) for a in assignees]
        return respond(
            engine.issues.issue_json(target, iss), 201, {"Location": f"{engine.urls.repo(target)}/issues/{iss.number}"}
        )

    @router.get("/repos/{owner}/{repo}/issues")
    async def list_issues(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("issues",))
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
        _, target, _ = gate.access(request, owner, repo, ("issues",))
        items = sorted((c for c in engine.state.comments.values() if c.repo_id == target.id), key=lambda c: c.id)
        page, headers = paginate(request, items)
        return respond([engine.issues.comment_json(target, c) for c in page], headers=headers)

    def comment_access(
        request: Request, owner: str, repo: str, comment_id: int, level: str
    ) -> tuple[Repo, Comment, User]:
        target = engine.state.repo(owner, repo)
        c = engine.state.comments.get(comment_id)
        iss = target.issues.get(c.issue_number) if target and c and c.repo_id == target.id else None
        _, target, who = gate.access(request, owner, repo, issue_resources(iss), level)
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
        return respond([P.reaction(engine.urls, r) for r in page], headers=headers)

    @router.get("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
    async def list_comment_reactions(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        _, c, _ = comment_access(request, owner, repo, comment_id, "read")
        return reactions_page(request, c.reactions)

    @router.post("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
    async def create_comment_reaction(request: Request, owner: str, repo: str, comment_id: int) -> Response:
        _, c, who = comment_access(request, owner, repo, comment_id, "write")
        body = await json_body(request)
        r, created = engine.issues.add_reaction(c.reactions, who, str(body.get("content")))
        return respond(P.reaction(engine.urls, r), 201 if created else 200)

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
            engine.issues.comment_json(target, c),
            201,
            {"Location": f"{engine.urls.repo(target)}/issues/comments/{c.id}"},
        )

    @router.get("/repos/{owner}/{repo}/issues/{number}/labels")
    async def list_issue_labels(request: Request, owner: str, repo: str, number: int) -> Response:
        target, iss, _ = issue_access(request, owner, repo, number, "read")
        items = [P.label(engine.urls, target, target.labels[n.lower()]) for n in iss.labels]
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
        return respond([P.label(engine.urls, target, target.labels[n.lower()]) for n in iss.labels])

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
        return respond([P.label(engine.urls, target, target.labels[n.lower()]) for n in iss.labels])

    @router.get("/repos/{owner}/{repo}/issues/{number}/reactions")
    async def list_issue_reactions(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, _ = issue_access(request, owner, repo, number, "read")
        return reactions_page(request, iss.reactions)

    @router.post("/repos/{owner}/{repo}/issues/{number}/reactions")
    async def create_issue_reaction(request: Request, owner: str, repo: str, number: int) -> Response:
        _, iss, who = issue_access(request, owner, repo, number, "write")
        body = await json_body(request)
        r, created = engine.issues.add_reaction(iss.reactions, who, str(body.get("content")))
        return respond(P.reaction(engine.urls, r), 201 if created else 200)

    @router.delete("/repos/{owner}/{repo}/issues/{number}/reactions/{reaction_id}")
    async def delete_issue_reaction(request: Request, owner: str, repo: str, number: int, reaction_id: int) -> Response:
        _, iss, _ = issue_access(request, owner, repo, number, "write")
        iss.reactions[:] = [r for r in iss.reactions if r.id != reaction_id]
        return Response(status_code=204)

    @router.get("/repos/{owner}/{repo}/labels")
    async def list_labels(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("issues", "pull_requests"))
        items = [P.label(engine.urls, target, lab) for lab in target.labels.values()]
        page, headers = paginate(request, items)
        return respond(page, headers=headers)

    @router.get("/repos/{owner}/{repo}/labels/{name:path}")
    async def get_label(request: Request, owner: str, repo: str, name: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("issues", "pull_requests"))
        lab = target.labels.get(name.lower())
        if lab is None:
            raise not_found()
        return respond(P.label(engine.urls, target, lab))

    @router.post("/repos/{owner}/{repo}/labels")
    async def create_label(request: Request, owner: str, repo: str) -> Response:
        _, target, _ = gate.access(request, owner, repo, ("issues", "pull_requests"), "write")
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
        return respond(P.label(engine.urls, target, lab), 201)

    return router
