"""HTTP control endpoints (`/_sandbox/...`) for a process that drives the sandbox from outside, and the fake
`settings/apps/new` page of the manifest flow.

`POST /_sandbox/call/{verb}` with a JSON object of keyword arguments runs the same verb as the Python control API
(`Sandbox.<verb>(**kwargs)`); the rest are read-only views.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine
from bot.sandbox.errors import ApiError

# Verbs callable over HTTP: the engine's control methods, nothing else.
VERBS = (
    "approve",
    "add_label",
    "close_issue",
    "comment",
    "create_app",
    "create_repo",
    "edit_comment_as",
    "install",
    "installation_token",
    "merge_pull",
    "open_issue",
    "open_pull",
    "protect_branch",
    "push_commit",
    "react",
    "remove_label",
    "request_check_run_action",
    "review",
    "review_decision",
    "set_ci",
    "set_draft",
    "set_permission",
    "set_webhook",
    "user_token",
    "wait_idle",
)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def build_control_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/call/{verb}")
    async def call(request: Request, verb: str) -> Response:
        if verb not in VERBS:
            return JSONResponse({"message": f"unknown verb {verb!r}", "verbs": list(VERBS)}, status_code=404)
        raw = await request.body()
        try:
            kwargs = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return JSONResponse({"message": "body must be a JSON object of keyword arguments"}, status_code=400)
        if not isinstance(kwargs, dict):
            return JSONResponse({"message": "body must be a JSON object of keyword arguments"}, status_code=400)
        try:
            result = await engine.verb(verb)(**kwargs)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=422)
        except TimeoutError as exc:
            return JSONResponse({"message": str(exc)}, status_code=504)
        return JSONResponse({"result": _jsonable(result)})

    @router.post("/_sandbox/webhooks/pause")
    async def pause(request: Request) -> Response:
        drop = request.query_params.get("drop", "false").lower() in ("1", "true", "yes")
        engine.outbox.pause(drop=drop)
        return JSONResponse({"paused": True, "drop": drop})

    @router.post("/_sandbox/webhooks/resume")
    async def resume() -> Response:
        engine.outbox.resume()
        return JSONResponse({"paused": False})

    @router.get("/_sandbox/requests")
    async def requests() -> Response:
        return JSONResponse([_jsonable(r) for r in engine.requests])

    @router.get("/_sandbox/violations")
    async def violations() -> Response:
        return JSONResponse([{"where": v.where, "problems": v.problems} for v in engine.violations])

    @router.get("/_sandbox/deliveries")
    async def deliveries() -> Response:
        out = []
        for d in engine.webhooks.deliveries():
            item = P.delivery_item(d)
            item["app_id"] = d.app_id
            item["attempts"] = len(d.attempts)
            item["payload"] = json.loads(d.body)
            out.append(item)
        return JSONResponse(out)

    @router.get("/_sandbox/state")
    async def state() -> Response:
        s = engine.state
        return JSONResponse(
            {
                "api_url": engine.urls.api,
                "apps": [
                    {"id": a.id, "slug": a.slug, "webhook_url": a.webhook_url}
                    for a in s.apps.values()
                    if not a.internal
                ],
                "installations": [
                    {"id": i.id, "app_id": i.app_id, "account": i.account.login} for i in s.installations.values()
                ],
                "repos": [
                    {"id": r.id, "full_name": r.full_name, "clone_url": f"{engine.urls.web}/{r.full_name}.git"}
                    for r in s.repos.values()
                ],
            }
        )

    async def new_app(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = parse_qs(raw)
        if not form and request.method == "GET":
            form = parse_qs(request.url.query)
        manifest_text = (form.get("manifest") or [""])[0]
        try:
            manifest = json.loads(manifest_text)
        except ValueError:
            return Response("The manifest is not valid JSON.\n", status_code=422, media_type="text/plain")
        if not isinstance(manifest, dict) or not manifest.get("url"):
            return Response("The manifest needs at least `url`.\n", status_code=422, media_type="text/plain")
        code, redirect = await engine.identity.start_manifest(manifest)
        state = request.query_params.get("state")
        if not redirect:
            return JSONResponse({"code": code, "state": state})
        parts = urlsplit(redirect)
        query = parse_qs(parts.query)
        query["code"] = [code]
        if state is not None:
            query["state"] = [state]
        target = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        return RedirectResponse(target, status_code=302)

    router.add_api_route("/settings/apps/new", new_app, methods=["POST"])
    router.add_api_route("/organizations/{org}/settings/apps/new", new_app, methods=["POST"])
    return router
