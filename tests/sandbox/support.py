"""Helpers for the sandbox's tests: App JWTs, a webhook receiver that checks signatures, git with a token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from starlette.types import Receive, Scope, Send

from bot.sandbox import AppCredentials, Sandbox

OWNER = "octo"
REPO = "demo"


def app_jwt(creds: AppCredentials, *, now: float | None = None, lifetime: int = 540, iss: str | None = None) -> str:
    """An App JWT as githubkit makes one (iat a minute back, exp nine minutes ahead)."""
    issued = int(now if now is not None else time.time()) - 60
    claims = {"iss": iss or str(creds.app_id), "iat": issued, "exp": issued + 60 + lifetime}
    return jwt.encode(claims, creds.private_key_pem, algorithm="RS256")


@dataclass
class Installed:
    """An App installed on OWNER/REPO, with a token for it."""

    creds: AppCredentials
    installation_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def jwt_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {app_jwt(self.creds)}"}


# ---------------------------------------------------------------- a webhook receiver that checks signatures


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> str:
        return self.headers["x-github-event"]

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None


@dataclass
class Receiver:
    """An HTTP endpoint in its own thread: verifies X-Hub-Signature-256 and -1, records, answers as told."""

    secret: str
    received: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    fail_with: list[int] = field(default_factory=list)  # statuses to answer, one per request, before 200s
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/github/webhooks"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        expected256 = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        expected1 = "sha1=" + hmac.new(self.secret.encode(), body, hashlib.sha1).hexdigest()
        ok = hmac.compare_digest(headers.get("x-hub-signature-256", ""), expected256) and hmac.compare_digest(
            headers.get("x-hub-signature", ""), expected1
        )
        if not ok:
            self.bad_signatures += 1
            status = 401
        elif self.fail_with:
            status = self.fail_with.pop(0)
        else:
            status = 202
            self.received.append(Received(headers, body))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"no"})

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self, lifespan="off", log_config=None, log_level="warning", ws="none")
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = None
        self._thread = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} deliveries, wanted {count}"
            time.sleep(0.01)
        return list(self.received)

    def events(self) -> list[tuple[str, str | None]]:
        return [(r.event, r.action) for r in self.received]


# ---------------------------------------------------------------- git


def git_env(token: str | None, home: Path) -> dict[str, str]:
    """git with no user config, no prompts, and the token sent as HTTP Basic by an extra header (not in the URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Agent",
            "GIT_AUTHOR_EMAIL": "agent@example.com",
            "GIT_COMMITTER_NAME": "Agent",
            "GIT_COMMITTER_EMAIL": "agent@example.com",
        }
    )
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def git(
    args: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=60)


def bare_git(sandbox: Sandbox, *args: str) -> str:
    """Run git directly in the sandbox's bare repository of OWNER/REPO."""
    path = sandbox.root / "repos" / OWNER / f"{REPO}.git"
    return subprocess.run(
        ["git", "--git-dir", str(path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()
