"""git over smart HTTP: `git http-backend` as a CGI child, behind installation-token authentication.

Clone and fetch need `contents: read` (or a public repository); push needs `contents: write`, on a token whose
repository scope covers the repository. Credentials come as HTTP Basic `x-access-token:<token>`, as on GitHub.
After a push, the refs that moved are announced like any other push (webhooks, PR synchronize, CI).
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from fastapi import Request, Response

from bot.sandbox.auth import Principal, grants, looks_like_jwt, parse_authorization
from bot.sandbox.engine import Engine, RefUpdate
from bot.sandbox.git import ZERO_SHA, git_env
from bot.sandbox.state import ROLE_RANK, Repo, User

SERVICES = ("git-upload-pack", "git-receive-pack")
_BACKEND: str | None = None


def backend_path() -> str:
    """`$(git --exec-path)/git-http-backend`, looked up once."""
    global _BACKEND
    if _BACKEND is None:
        exec_path = subprocess.run(
            ["git", "--exec-path"], capture_output=True, text=True, check=True, env=git_env()
        ).stdout.strip()
        _BACKEND = f"{exec_path}/git-http-backend"
    return _BACKEND


def _challenge() -> Response:
    return Response(
        "Invalid username or token. Password authentication is not supported for Git operations.\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
        media_type="text/plain",
    )


def _denied(repo: Repo, who: User | None) -> Response:
    name = who.login if who else "anonymous"
    return Response(f"Permission to {repo.full_name}.git denied to {name}.\n", status_code=403, media_type="text/plain")


def _not_found() -> Response:
    return Response("Repository not found.\n", status_code=404, media_type="text/plain")


def _principal(engine: Engine, header: str | None) -> Principal | None:
    """The caller, or None when the credentials are bad (JWTs are not git credentials)."""
    credential = parse_authorization(header)
    if credential is None:
        return Principal("anonymous") if not header else None
    if looks_like_jwt(credential):
        return None
    login = engine.state.user_tokens.get(credential)
    if login is not None and (who := engine.state.user(login)) is not None:
        return Principal("user", user=who)
    token = engine.state.tokens.get(credential)
    if token is None or token.expires_at <= engine.clock() or token.revoked_at is not None:
        return None
    inst = engine.state.installations.get(token.installation_id)
    if inst is None:
        return None
    return Principal("installation", app=engine.state.apps[inst.app_id], installation=inst, token=token)


def authorize(engine: Engine, repo: Repo, p: Principal, write: bool) -> Response | None:
    """None when the caller may read (or push to) the repository; the refusal otherwise."""
    if p.kind == "anonymous":
        if write or repo.private:
            return _challenge()
        return None
    if p.kind == "user":
        assert p.user is not None
        rank = ROLE_RANK[engine.repos.role_of(repo, p.user)]
        if rank < ROLE_RANK["read"]:
            return _not_found()
        if write and rank < ROLE_RANK["write"]:
            return _denied(repo, p.user)
        return None
    assert p.token is not None
    assert p.installation is not None
    assert p.app is not None
    if not engine.identity.token_covers(p.token, p.installation, repo):
        if repo.private:
            return _not_found()
        return _denied(repo, p.app.bot) if write else None
    if not grants(p.token.permissions, ("contents",), "write" if write else "read"):
        return _denied(repo, p.app.bot)
    return None


async def serve_git(engine: Engine, request: Request) -> Response:
    owner = request.path_params["owner"]
    name = request.path_params["repo"]
    rest = request.path_params["rest"]
    service = request.query_params.get("service", "") if rest == "info/refs" else rest
    if service not in SERVICES or (rest != "info/refs" and request.method != "POST"):
        return Response("Not Found\n", status_code=404, media_type="text/plain")
    write = service == "git-receive-pack"
    repo = engine.state.repo(owner, name)
    p = _principal(engine, request.headers.get("authorization"))
    request.state.principal = p
    if p is None:
        return _challenge()
    if repo is None:
        return _not_found() if p.kind != "anonymous" else _challenge()
    refusal = authorize(engine, repo, p, write)
    if refusal is not None:
        return refusal
    actor = p.actor or engine.ghost
    body = await request.body()
    if write:
        async with engine.repo_lock(repo):
            before = await engine.git(repo).refs()
            deny_workflows = p.token is not None and not grants(p.token.permissions, ("workflows",), "write")
            status, headers, out = await _cgi(engine, repo, request, rest, body, actor, deny_workflows)
            after = await engine.git(repo).refs()
        updates = [
            RefUpdate(ref, before.get(ref, ZERO_SHA), after.get(ref, ZERO_SHA))
            for ref in sorted(set(before) | set(after))
            if before.get(ref) != after.get(ref)
        ]
        await engine.repos.after_push(repo, updates, actor)
    else:
        status, headers, out = await _cgi(engine, repo, request, rest, body, actor)
    return Response(out, status_code=status, headers=headers)


async def _cgi(
    engine: Engine,
    repo: Repo,
    request: Request,
    rest: str,
    body: bytes,
    actor: User,
    deny_workflows: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    env = git_env(
        {
            "GIT_PROJECT_ROOT": str(engine.repos_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo.owner.login}/{repo.name}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": actor.login,
            "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
    )
    if deny_workflows:
        env["SANDBOX_DENY_WORKFLOWS"] = "1"
    if "git-protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["git-protocol"]
    if "content-encoding" in request.headers:
        env["HTTP_CONTENT_ENCODING"] = request.headers["content-encoding"]
    proc = await asyncio.create_subprocess_exec(
        backend_path(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, _err = await proc.communicate(body)
    return _parse_cgi(out)


def _parse_cgi(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    sep = raw.find(b"\r\n\r\n")
    skip = 4
    if sep < 0:
        sep, skip = raw.find(b"\n\n"), 2
    if sep < 0:
        return 502, {}, raw
    head, body = raw[:sep].decode("latin-1"), raw[sep + skip :]
    status = 200
    headers: dict[str, Any] = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers[key] = value
    return status, headers, body
