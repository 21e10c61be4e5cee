"""`kickoff setup`: create Kickoff's GitHub App with GitHub's manifest flow, as Probot does.

A page on 127.0.0.1 posts `app-manifest.yml` (as JSON in the form field `manifest`) to GitHub with a random `state`.
GitHub creates the App and sends the browser back to `/callback?code=…&state=…`; the one-hour code is exchanged
(`POST /app-manifests/{code}/conversions`) for the App's id, private key and secrets, which are written to `.env`
with mode 0600. Secrets never reach the terminal or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import json
import os
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
import yaml

from bot import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_GITHUB_URL = "https://github.com"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_PUBLIC_URL = "http://localhost:3000"
WEBHOOK_PATH = "/api/github/webhooks"
MANIFEST_FILE = "app-manifest.yml"
CALLBACK_PATH = "/callback"
API_VERSION = "2022-11-28"
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]*")

Echo = Callable[[str], None]


class SetupError(Exception):
    """`kickoff setup` cannot go on; the message says why in one line, and what to do."""


def _base_url(value: str, what: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{what}: {value!r} is not an http(s) URL")
    return value.strip().rstrip("/")


def api_url_for(github_url: str) -> str:
    """GitHub's REST API for a GitHub web address: api.github.com, api.SUBDOMAIN.ghe.com, or GHES's /api/v3."""
    base = _base_url(github_url, "--github-url")
    host = (urlsplit(base).hostname or "").lower()
    if host in ("github.com", "www.github.com"):
        return DEFAULT_API_URL
    if host.endswith(".ghe.com") and not host.startswith("api."):
        return f"https://api.{host}"
    return f"{base}/api/v3"


def new_app_url(github_url: str, org: str | None) -> str:
    """Where the manifest is posted: the user's or an organization's "new GitHub App" page."""
    base = _base_url(github_url, "--github-url")
    if org:
        return f"{base}/organizations/{quote(org, safe='')}/settings/apps/new"
    return f"{base}/settings/apps/new"


def find_manifest(explicit: Path | None) -> Path:
    """`--manifest`, else `app-manifest.yml` in the current directory, else the copy shipped inside the package."""
    if explicit is not None:
        if not explicit.is_file():
            raise SetupError(f"--manifest: {explicit} is not a file")
        return explicit
    for candidate in (Path.cwd() / MANIFEST_FILE, Path(__file__).resolve().parent / MANIFEST_FILE):
        if candidate.is_file():
            return candidate
    raise SetupError(f"no {MANIFEST_FILE} here: run from a Kickoff checkout or pass --manifest FILE")


def load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SetupError(f"{path}: cannot read the manifest ({exc})") from None
    if not isinstance(data, dict):
        raise SetupError(f"{path}: a manifest is a mapping (name, url, hook_attributes, default_permissions, …)")
    return data


def prepare_manifest(
    manifest: dict[str, Any], *, webhook_url: str, redirect_url: str, homepage: str, name: str | None = None
) -> dict[str, Any]:
    """The manifest as sent: the webhook, the redirect back to this page, and (when empty) the homepage filled in."""
    out = dict(manifest)
    if name:
        out["name"] = name
    if not out.get("url"):
        out["url"] = homepage
    hook = dict(out.get("hook_attributes") or {})
    hook["url"] = webhook_url
    out["hook_attributes"] = hook
    out["redirect_url"] = redirect_url
    return out


def is_local(url: str) -> bool:
    """Whether GitHub.com could not reach this URL (loopback or a private address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


@dataclass(frozen=True)
class AppCredentials:
    """What the conversion returns. The secrets are left out of `repr`, so they cannot leak through a log line."""

    app_id: int
    slug: str
    name: str
    html_url: str
    client_id: str
    pem: str = field(repr=False)
    webhook_secret: str | None = field(repr=False)
    client_secret: str = field(repr=False)

    @property
    def installation_url(self) -> str:
        return f"{self.html_url}/installations/new"


async def convert_code(api_url: str, code: str, *, transport: httpx.AsyncBaseTransport | None = None) -> AppCredentials:
    """Exchange the manifest flow's code for the new App's credentials (no auth: the code is the credential)."""
    if not _CODE.fullmatch(code):
        raise SetupError("GitHub's code has an unexpected shape")
    url = f"{api_url.rstrip('/')}/app-manifests/{code}/conversions"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": f"kickoff-bot/{__version__}",
    }
    try:
        async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
            response = await client.post(url, headers=headers)
    except httpx.HTTPError as exc:
        raise SetupError(f"could not reach GitHub's API at {api_url} ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 201 or not isinstance(body, dict):
        message = body.get("message") if isinstance(body, dict) else None
        hint = " (the code is single-use and lasts one hour)" if response.status_code == 404 else ""
        raise SetupError(f"GitHub refused the conversion: HTTP {response.status_code} {message or ''}{hint}".strip())
    try:
        creds = AppCredentials(
            app_id=int(body["id"]),
            slug=str(body["slug"]),
            name=str(body.get("name") or body["slug"]),
            html_url=str(body["html_url"]).rstrip("/"),
            client_id=str(body["client_id"]),
            pem=str(body["pem"]),
            webhook_secret=str(body["webhook_secret"]) if body.get("webhook_secret") else None,
            client_secret=str(body["client_secret"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SetupError(f"GitHub's conversion answer lacks {exc}") from None
    from bot.logs import register_secret

    for secret in (creds.pem, creds.webhook_secret, creds.client_secret):
        register_secret(secret)
    return creds


def _dotenv_value(value: str) -> str:
    """A value as python-dotenv (so pydantic-settings) reads it back. GitHub's ids and secrets need no quotes, so
    they stay bare, which Docker's `--env-file` (taking values literally) reads the same way."""
    if _BARE_VALUE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def env_text(creds: AppCredentials, api_url: str) -> str:
    """The `.env` lines for the new App: its id and key, the webhook secret, the OAuth client, the API when not
    api.github.com. The PEM goes on one line with `\\n` escapes, quoted, as `PRIVATE_KEY` accepts it."""
    pem = creds.pem.strip().replace("\r\n", "\n").replace("\n", "\\n") + "\\n"
    lines = [
        f"# Written by `kickoff setup` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC for the GitHub App {creds.name!r}",
        f"# ({creds.html_url}). Keep this file private: it holds the App's private key and secrets.",
        f"APP_ID={creds.app_id}",
        f'PRIVATE_KEY="{pem}"',
    ]
    if creds.webhook_secret:
        lines.append(f"WEBHOOK_SECRET={_dotenv_value(creds.webhook_secret)}")
    lines += [
        f"GITHUB_CLIENT_ID={_dotenv_value(creds.client_id)}",
        f"GITHUB_CLIENT_SECRET={_dotenv_value(creds.client_secret)}",
    ]
    if api_url.rstrip("/") != DEFAULT_API_URL:
        lines.append(f"GITHUB_API_URL={_dotenv_value(api_url.rstrip('/'))}")
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str) -> None:
    """Create `path` (never replacing anything) readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, 0o600)  # the umask can only take bits away, but be explicit
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def write_env(path: Path, text: str, *, force: bool = False) -> Path:
    """Write `text` to `path` with mode 0600. An existing file is replaced only with `force` (atomically);
    otherwise the text goes to `path.new` (or `path.new.2`, …), and the path written is returned."""
    if force:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        _write_new(temporary, text)
        try:
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        return path
    candidates = [path, path.with_name(f"{path.name}.new")]
    candidates += [path.with_name(f"{path.name}.new.{n}") for n in range(2, 100)]
    for candidate in candidates:
        try:
            _write_new(candidate, text)
        except FileExistsError:
            continue
        return candidate
    raise SetupError(f"{path} and {path}.new… all exist: remove some, or pass --force")


@dataclass
class SetupOptions:
    github_url: str = DEFAULT_GITHUB_URL
    api_url: str | None = None
    org: str | None = None
    name: str | None = None
    webhook_url: str | None = None
    public_url: str = DEFAULT_PUBLIC_URL
    port: int = 3000
    manifest: Path | None = None
    env_file: Path = Path(".env")
    force: bool = False
    open_browser: bool = False


@dataclass
class SetupResult:
    creds: AppCredentials
    env_path: Path


class SetupFlow:
    """One set-up session: its CSRF `state`, the manifest to post, and the outcome once GitHub calls back."""

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        action_url: str,
        api_url: str,
        env_file: Path,
        force: bool,
        page_url: str,
    ) -> None:
        self.manifest = manifest
        self.action_url = action_url
        self.api_url = api_url
        self.env_file = env_file
        self.force = force
        self.page_url = page_url
        self.state = secrets.token_urlsafe(32)
        self.result: SetupResult | None = None
        self.on_done: Callable[[], None] = lambda: None
        self._lock = asyncio.Lock()

    def state_matches(self, state: str | None) -> bool:
        return state is not None and secrets.compare_digest(state.encode(), self.state.encode())

    async def complete(self, code: str) -> SetupResult:
        """Convert the code and write the credentials; once only."""
        async with self._lock:
            if self.result is not None:
                return self.result
            creds = await convert_code(self.api_url, code)
            text = env_text(creds, self.api_url)
            try:
                written = await asyncio.to_thread(write_env, self.env_file, text, force=self.force)
            except OSError as exc:
                raise SetupError(f"could not write {self.env_file}: {exc.strerror}") from None
            self.result = SetupResult(creds, written)
            return self.result


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1f2328}}
code{{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}}button{{font-size:1rem;padding:.6rem 1.2rem;
border-radius:6px;border:1px solid #1f883d;background:#1f883d;color:#fff;cursor:pointer}}
.error{{color:#cf222e}}</style></head>
<body>{body}</body></html>
"""


def _start_page(flow: SetupFlow) -> str:
    m = flow.manifest
    permissions = m.get("default_permissions") or {}
    items = "".join(
        f"<li><code>{html.escape(str(k))}</code>: {html.escape(str(v))}</li>" for k, v in sorted(permissions.items())
    )
    events = ", ".join(html.escape(str(e)) for e in m.get("default_events") or [])
    action = f"{flow.action_url}?state={quote(flow.state, safe='')}"
    where = urlsplit(flow.action_url)
    return _page(
        "Kickoff: create your GitHub App",
        f"""<h1>Create Kickoff's GitHub App</h1>
<p>This creates the GitHub App <strong>{html.escape(str(m.get("name", "")))}</strong> on
<code>{html.escape(f"{where.scheme}://{where.netloc}")}</code> from <code>{MANIFEST_FILE}</code>, then writes its
credentials to <code>{html.escape(str(flow.env_file))}</code> on this machine.</p>
<p>Webhooks go to <code>{html.escape(str((m.get("hook_attributes") or {}).get("url", "")))}</code>.</p>
<details><summary>Permissions and events</summary><ul>{items}</ul><p>Events: {events}</p></details>
<form id="manifest-form" action="{html.escape(action)}" method="post">
<input type="hidden" name="manifest" value="{html.escape(json.dumps(m))}">
<p><button id="create" type="submit">Create the GitHub App on GitHub</button></p>
</form>""",
    )


def _error_page(message: str, flow: SetupFlow) -> str:
    return _page(
        "Kickoff: set-up failed",
        f"""<h1 class="error">The set-up did not finish</h1>
<p id="error">{html.escape(message)}</p>
<p>Start again from <a href="{html.escape(flow.page_url)}">{html.escape(flow.page_url)}</a>.</p>""",
    )


def _success_page(result: SetupResult) -> str:
    creds = result.creds
    return _page(
        "Kickoff: your GitHub App is ready",
        f"""<h1 id="success">Your GitHub App is ready</h1>
<p>GitHub created <a href="{html.escape(creds.html_url)}">{html.escape(creds.name)}</a>, and its credentials are in
<code>{html.escape(str(result.env_path))}</code> (readable by you only).</p>
<ol><li><a id="install" href="{html.escape(creds.installation_url)}">Install the App</a> on the repositories
Kickoff should work on.</li><li>Start Kickoff: <code>kickoff serve</code>.</li></ol>
<p>You can close this tab; <code>kickoff setup</code> has finished.</p>""",
    )


def build_app(flow: SetupFlow) -> FastAPI:
    """The set-up page (`GET /`) and GitHub's redirect back (`GET /callback`)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse
    from starlette.background import BackgroundTask

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="kickoff setup")
    no_store = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

    @app.get("/")
    async def start() -> HTMLResponse:
        if flow.result is not None:
            return HTMLResponse(_success_page(flow.result), headers=no_store)
        return HTMLResponse(_start_page(flow), headers=no_store)

    @app.get(CALLBACK_PATH)
    async def callback(code: str | None = None, state: str | None = None) -> HTMLResponse:
        if not flow.state_matches(state):
            message = (
                "The state in GitHub's redirect does not match this set-up session (a stale tab, or a request that "
                "did not start here), so nothing was done."
            )
            return HTMLResponse(_error_page(message, flow), status_code=400, headers=no_store)
        if not code:
            message = "GitHub's redirect carries no code: the App was not created."
            return HTMLResponse(_error_page(message, flow), status_code=400, headers=no_store)
        try:
            result = await flow.complete(code)
        except SetupError as exc:
            return HTMLResponse(_error_page(str(exc), flow), status_code=502, headers=no_store)
        return HTMLResponse(_success_page(result), headers=no_store, background=BackgroundTask(flow.on_done))

    return app


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): pass --port") from None
    return sock


async def _serve(flow: SetupFlow, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        build_app(flow), log_config=None, access_log=False, lifespan="off", ws="none", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)

    def done() -> None:
        server.should_exit = True

    flow.on_done = done
    await server.serve(sockets=[sock])


def run_setup(options: SetupOptions, *, echo: Echo = print, warn: Echo = print) -> SetupResult:
    """Serve the set-up page until GitHub calls back with the new App, then write `.env` and return."""
    github_url = _base_url(options.github_url, "--github-url")
    api_url = _base_url(options.api_url, "--api-url") if options.api_url else api_url_for(github_url)
    public_url = _base_url(options.public_url, "PUBLIC_URL")
    webhook_url = _base_url(options.webhook_url, "--webhook-url") if options.webhook_url else public_url + WEBHOOK_PATH
    manifest_path = find_manifest(options.manifest)
    manifest = load_manifest(manifest_path)
    if not 0 <= options.port <= 65535:
        raise SetupError(f"--port: {options.port} is not a port")
    # The code can be converted once only: find out now, not after GitHub made the App, that .env cannot be written.
    folder = options.env_file.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise SetupError(f"--env-file: cannot write in {folder.resolve()}")
    sock = _bind(options.port)
    page_url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    flow = SetupFlow(
        manifest=prepare_manifest(
            manifest,
            webhook_url=webhook_url,
            redirect_url=page_url.rstrip("/") + CALLBACK_PATH,
            homepage=public_url,
            name=options.name,
        ),
        action_url=new_app_url(github_url, options.org),
        api_url=api_url,
        env_file=options.env_file,
        force=options.force,
        page_url=page_url,
    )
    if is_local(webhook_url) and not is_local(github_url):
        warn(
            f"warning: GitHub cannot deliver webhooks to {webhook_url}; pass --webhook-url with a public address "
            "(or a smee.io channel). You can change it later in the App's settings."
        )
    if options.env_file.exists() and not options.force:
        warn(f"note: {options.env_file} exists and will be left as it is: the credentials will go to a new file "
             f"beside it (pass --force to replace {options.env_file}).")
    echo(f"Open {page_url} in your browser to create the GitHub App from {manifest_path.name} "
         f"on {urlsplit(flow.action_url).netloc}. (Ctrl-C to stop.)")
    if options.open_browser:
        import webbrowser

        webbrowser.open(page_url)
    try:
        asyncio.run(_serve(flow, sock))
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if flow.result is None:
        raise SetupError("stopped before GitHub created the App; nothing was written")
    return flow.result


def report(result: SetupResult, env_file: Path, echo: Echo) -> None:
    """What the terminal shows once the App exists: where the credentials went and the next steps; no secret."""
    creds = result.creds
    names = "APP_ID, PRIVATE_KEY, " + ("WEBHOOK_SECRET, " if creds.webhook_secret else "")
    echo(f"Created the GitHub App {creds.name!r} (id {creds.app_id}): {creds.html_url}")
    echo(f"Wrote {names}GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET to {result.env_path} (mode 0600).")
    if result.env_path != env_file:
        echo(f"{env_file} already existed and was left as it is: move {result.env_path} to {env_file} to use it.")
    if not creds.webhook_secret:
        echo("GitHub returned no webhook secret: set one in the App's settings and as WEBHOOK_SECRET.")
    echo(f"Next: install the App on your repositories: {creds.installation_url}")
    echo("Then start Kickoff: kickoff serve")
