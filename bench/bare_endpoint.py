"""The baseline: a bare FastAPI endpoint that verifies the HMAC over the raw body and stores nothing."""

from __future__ import annotations

import hashlib
import hmac
import os

from fastapi import FastAPI, Request, Response

SECRET = os.environ["WEBHOOK_SECRET"].encode()
app = FastAPI()


@app.post("/api/github/webhooks")
async def webhook(request: Request) -> Response:
    body = await request.body()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
        return Response(status_code=401)
    return Response(status_code=202)
