"""The App's webhook deliveries (App JWT only): listing with cursor pagination, one delivery, redelivery."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from bot.sandbox import payloads as P
from bot.sandbox.engine import Engine
from bot.sandbox.errors import not_found, validation_failed
from bot.sandbox.routes.common import Gate, respond


def build_router(engine: Engine) -> APIRouter:
    """Routes for `/app/hook/deliveries`, as the dashboard and redelivery tooling read them."""
    router = APIRouter()
    gate = Gate(engine)

    @router.get("/app/hook/deliveries")
    async def list_deliveries(request: Request) -> Response:
        app = gate.app_only(request)
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
        app = gate.app_only(request)
        d = engine.state.deliveries.get(delivery_id)
        if d is None or d.app_id != app.id:
            raise not_found()
        return respond(P.delivery(d, app.webhook_url, json.loads(d.body)))

    @router.post("/app/hook/deliveries/{delivery_id}/attempts")
    async def redeliver(request: Request, delivery_id: int) -> Response:
        app = gate.app_only(request)
        engine.webhooks.redeliver(app, delivery_id)
        return respond({}, 202)

    return router
