"""The sandbox's ASGI app (REST + git + control + web) and `SandboxServer`, uvicorn on a free loopback port.

The server runs on the sandbox's own engine loop (a background thread), so it works the same from synchronous
pytest fixtures (`with SandboxServer(sb) as url:`) and from async tests (`async with SandboxServer(sb) as url:`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import traceback
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.sandbox import payloads as P
from bot.sandbox.auth import Principal
from bot.sandbox.budget import BudgetMiddleware
from bot.sandbox.conformance import Conformance, ConformanceMiddleware
from bot.sandbox.control import build_control_router
from bot.sandbox.engine import Engine, Violation
from bot.sandbox.errors import ApiError
from bot.sandbox.githttp import backend_path, serve_git
from bot.sandbox.routes import build_router
from bot.sandbox.state import RequestKind, RequestRecord

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox


_CONVERTER = re.compile(r"\{(\w+):\w+\}")  # `{path:path}` → `{path}`: the template as GitHub writes it


class RecordingMiddleware:
    """Log every request (method, path, status, who) and turn a crash into a recorded 500."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.engine.requests.append(_record(scope, status))

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Before the first byte leaves: a client that has its answer finds the request logged (a 304's or a
                # 204's answer is whole with its headers; the client does not wait for the empty body).
                record()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:
            where = f"{scope['method']} {scope['path']}"
            self.engine.violations.append(
                Violation(where, [f"sandbox crashed: {exc!r}", "".join(traceback.format_exception(exc))[-2000:]])
            )
            if status == 0:
                status = 500
                record()
                await send(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": b'{"message":"Server Error"}'})
        record()


def _record(scope: Scope, status: int) -> RequestRecord:
    path = scope["path"]
    principal = scope.get("state", {}).get("principal")
    kind: RequestKind = "rest"
    if path.startswith("/_sandbox/"):
        kind = "control"
    elif ".git/" in path:
        kind = "git"
    elif path.endswith("/settings/apps/new"):
        kind = "web"
    found = scope.get("route")
    route = getattr(found, "path", None) if found is not None else None
    route = _CONVERTER.sub(r"{\1}", route) if isinstance(route, str) else None
    if not isinstance(principal, Principal):
        return RequestRecord(scope["method"], path, status, kind=kind, route=route)
    actor = principal.actor
    return RequestRecord(
        scope["method"],
        path,
        status,
        installation_id=principal.installation.id if principal.installation else None,
        app_id=principal.app.id if principal.app else None,
        actor=actor.login if actor else None,
        kind=kind,
        route=route,
    )


def build_asgi(engine: Engine, conformance: Conformance) -> FastAPI:
    """One ASGI app serving GitHub's REST API, git smart HTTP, the control API and the manifest page."""
    backend_path()  # resolve git's exec path now, outside the event loop
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="GitHub sandbox")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405):
            return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)
        return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)

    app.include_router(build_router(engine))
    app.include_router(build_control_router(engine))

    async def git_endpoint(request: Request) -> Response:
        return await serve_git(engine, request)

    app.router.routes.append(Route("/{owner}/{repo}.git/{rest:path}", git_endpoint, methods=["GET", "POST"]))
    app.add_middleware(ConformanceMiddleware, engine=engine, conformance=conformance)
    app.add_middleware(BudgetMiddleware, limits=engine.rate_limits)  # outside the checks: they see the whole 200
    app.add_middleware(RecordingMiddleware, engine=engine)
    return app


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class SandboxServer:
    """uvicorn serving a Sandbox on 127.0.0.1 (a free port unless given), on the sandbox's engine loop."""

    def __init__(self, sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        self.port = port
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def _astart(self) -> str:
        sock = _free_socket(self.host, self.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self.sandbox.engine.urls = P.Urls(self.url, self.url)
        config = uvicorn.Config(
            self.sandbox.asgi,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="sandbox-uvicorn")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("sandbox server stopped during start-up")
            await asyncio.sleep(0.005)
        return self.url

    async def _astop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def start(self) -> str:
        """Start serving and return the base URL (`http://127.0.0.1:PORT`)."""
        url = self.sandbox.run(self._astart())
        self.sandbox.servers.append(self)
        return url

    def stop(self) -> None:
        if self in self.sandbox.servers:
            self.sandbox.servers.remove(self)
        self.sandbox.run(self._astop())

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        url = await self.sandbox.arun(self._astart())
        self.sandbox.servers.append(self)
        return url

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self in self.sandbox.servers:
            self.sandbox.servers.remove(self)
        await self.sandbox.arun(self._astop())
