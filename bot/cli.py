"""The `kickoff` command line: the bot's processes and its offline twins."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot import __version__

if TYPE_CHECKING:
    from bot.settings import Settings

T = TypeVar("T")

app = typer.Typer(name="kickoff", help="Kick off parallel AI coding agents from GitHub issues.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
config_app = typer.Typer(help="The per-repository config, .github/kickoff.yml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"kickoff: {message}", err=True)
    return typer.Exit(code)


def _settings() -> Settings:
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    from bot.settings import SettingsError

    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _configure_logging(settings: Settings) -> None:
    from bot.logs import configure_logging, register_secret

    configure_logging(settings.log_level, settings.log_format)
    for secret in (settings.webhook_secret, settings.dashboard_token, settings.metrics_token, settings.private_key):
        if secret is not None:
            register_secret(secret.get_secret_value())


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = 3000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="HTTP only; run `kickoff worker` apart.")] = False,
) -> None:
    """Serve the webhook endpoint, the dashboard and (unless --no-worker) the worker's loops."""
    import uvicorn

    from bot.settings import SettingsError
    from bot.web import create_app, preflight

    # The app decides what goes without a token from the address it is really bound to, so it gets this one.
    settings = _settings().model_copy(update={"host": host})
    try:
        settings.require_webhook_secret()
        application = create_app(settings, run_worker=not no_worker)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    _run(lambda: preflight(settings, worker=not no_worker))
    _configure_logging(settings)
    # proxy_headers off: the client address stays the socket's peer, never what X-Forwarded-For claims.
    config = uvicorn.Config(application, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10, proxy_headers=False)
    server = uvicorn.Server(config)
    _freeze_heap()
    try:
        server.run()
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if not server.started:
        raise _fail("the server did not start (see the message above)", code=1)


def _freeze_heap() -> None:
    """Move everything built at start-up (modules, models, the app) out of the garbage collector's sight.

    The cyclic collector otherwise walks these hundreds of thousands of long-lived objects on every full
    collection, a pause of tens of milliseconds in the middle of some webhook's acknowledgement.
    """
    gc.collect()
    gc.freeze()


@app.command()
def worker() -> None:
    """Run the worker (dispatcher, scheduler, pull requests, tracking comments, queue sweep, redelivery) against the
    same database as `kickoff serve --no-worker`."""
    settings = _settings()
    _configure_logging(settings)

    async def main() -> None:
        from bot import root
        from bot.stalls import watch_loop
        from bot.worker import build_worker

        async with root.running(settings) as services:
            stalls = watch_loop(settings.stall_log_ms)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            # Built before any loop starts, so a refusal (the local sandbox) is one line. Redelivery asks GitHub's
            # own deliveries API: only with the App's credentials (the gateway is built from them, or is None).
            loops = build_worker(services, root.router(settings), redeliver=services.github is not None)
            try:
                await loops.run(stop)
            finally:
                if stalls is not None:
                    stalls.stop()

    from bot.worker import LoopFailed

    try:
        _run(main)
    except LoopFailed as exc:
        raise _fail(str(exc), code=1) from None


@app.command()
def receive(
    event: Annotated[str, typer.Option("--event", "-e", help="The X-GitHub-Event name, e.g. issues.")],
    payload: Annotated[Path, typer.Option("--payload", "-p", help="A JSON payload file.", exists=True,
                                          dir_okay=False, readable=True)],
    delivery_id: Annotated[str | None, typer.Option(help="Delivery id (default: a new uuid).")] = None,
) -> None:
    """Run a stored payload through the same inbox and dispatcher as a live delivery."""
    from bot.ingress import read_envelope
    from bot.store.inbox import NewDelivery
    from bot.store.models import utcnow

    settings = _settings()
    _configure_logging(settings)
    body = payload.read_text()
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _fail(f"{payload}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(parsed, dict):
        raise _fail(f"{payload}: a webhook payload is a JSON object")
    try:
        envelope = read_envelope(body.encode())
    except ValueError as exc:
        raise _fail(f"{payload}: {exc}") from None

    async def main() -> str:
        from bot import root
        from bot.dispatcher import Dispatcher

        async with root.running(settings) as services:
            did = delivery_id or str(uuid.uuid4())
            new = await services.inbox.insert_many([NewDelivery(
                id=did, event=event, action=envelope.action, installation_id=envelope.installation_id,
                repository=envelope.repository, payload=body, received_at=utcnow(),
            )])
            if did not in new:
                return f"{did}: already in the inbox, not run again"
            await Dispatcher(services, root.router(settings)).run_until_idle()
            row = await services.inbox.get(did)
            status = row.status if row else "missing"
            error = f" ({row.last_error})" if row and row.last_error else ""
            return f"{did}: {status}{error}"

    typer.echo(_run(main))


@app.command()
def status(
    repo: Annotated[str | None, typer.Option(help="Only this repository (owner/name).")] = None,
) -> None:
    """Print installations, review queues, runs, outcomes and failed deliveries from the database (DATABASE_URL)."""
    from bot.dashboard.outcomes import outcomes
    from bot.dashboard.queries import overview
    from bot.services import open_store
    from bot.status import print_status
    from bot.store.models import utcnow

    settings = _settings()

    async def main() -> None:
        store = await open_store(settings)
        try:
            now = utcnow()
            print_status(await overview(store, now, repo=repo), outcomes=await outcomes(store, now, repo=repo))
        finally:
            await store.close()

    _run(main)


@app.command()
def redeliver(
    since: Annotated[str, typer.Option(help="How far back to look: 30m, 24h, 3d (GitHub keeps 3 days; 7 on "
                                       "GitHub Enterprise Server).")] = "24h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be redelivered; ask for "
                                          "nothing.")] = False,
) -> None:
    """Ask GitHub to redeliver the App's failed deliveries that are not in the inbox, once per delivery."""
    from bot import root
    from bot.redelivery import parse_since, redeliver_missed
    from bot.settings import SettingsError
    from bot.store.models import utcnow

    try:
        window = parse_since(since)
    except ValueError as exc:
        raise _fail(f"--since: {exc}") from None
    settings = _settings()
    try:
        settings.require_app_credentials()
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    _configure_logging(settings)

    async def main() -> tuple[list[str], str, int]:
        async with root.running(settings) as services:
            report = await redeliver_missed(services.require_github(), services.inbox, since=window, now=utcnow(),
                                            dry_run=dry_run)
        verb = "would redeliver" if dry_run else "redelivered"
        lines = [f"{verb} {d.guid} ({d.key}, failed {d.delivered_at:%Y-%m-%d %H:%M:%S})" for d in report.redelivered]
        return [*lines, *(f"failed: {e}" for e in report.errors)], report.summary(), len(report.errors)

    lines, summary, errors = _run(main)
    for line in lines:
        typer.echo(line)
    typer.echo(summary)
    if errors:
        raise typer.Exit(1)




@app.command()
def setup(
    github_url: Annotated[str, typer.Option(help="GitHub's web address: GitHub Enterprise Server, or the "
                                            "sandbox.")] = "https://github.com",
    api_url: Annotated[str | None, typer.Option(help="GitHub's REST API (default: from --github-url).")] = None,
    org: Annotated[str | None, typer.Option(help="Create the App in this organization.")] = None,
    name: Annotated[str | None, typer.Option(help="The App's name (default: the manifest's).")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Where GitHub sends webhooks (default: "
                                                    "PUBLIC_URL/api/github/webhooks).")] = None,
    public_url: Annotated[str, typer.Option(envvar="PUBLIC_URL", help="Where Kickoff will be "
                                            "reachable.")] = "http://localhost:3000",
    port: Annotated[int, typer.Option(help="Port of the local set-up page on 127.0.0.1 (0: any).")] = 3000,
    manifest: Annotated[Path | None, typer.Option(help="The manifest (default: app-manifest.yml).",
                                                  dir_okay=False)] = None,
    env_file: Annotated[Path, typer.Option(help="Where the credentials go.", dir_okay=False)] = Path(".env"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing env file.")] = False,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the set-up page in a browser.")] = False,
) -> None:
    """Create the GitHub App from app-manifest.yml (GitHub's manifest flow) and write its credentials to .env."""
    from bot.setup import SetupError, SetupOptions, report, run_setup

    options = SetupOptions(github_url=github_url, api_url=api_url, org=org, name=name, webhook_url=webhook_url,
                           public_url=public_url, port=port, manifest=manifest, env_file=env_file, force=force,
                           open_browser=open_browser)
    try:
        result = run_setup(options, echo=typer.echo, warn=lambda line: typer.echo(line, err=True))
    except SetupError as exc:
        raise _fail(str(exc), code=1) from None
    report(result, env_file, typer.echo)


@app.command()
def demo(
    real_agents: Annotated[bool, typer.Option("--real-agents", help="Use the real built-in agents (claude, codex, "
                                              "gemini, aider: those installed and keyed) instead of the scripted "
                                              "ones.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the sandbox and Kickoff running afterwards; prints the "
                                       "dashboard URL (Ctrl-C to stop).")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON to this file.",
                                                   dir_okay=False)] = None,
) -> None:
    """Run the whole story offline: a simulated GitHub, three agents, three PRs, the review queue, a merge."""
    from bot.demo import main as demo_main

    raise typer.Exit(demo_main(real_agents=real_agents, keep=keep, json_path=json_file))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations (run once per release, before the new version serves)."""
    from bot.store.db import Store

    settings = _settings()

    async def main() -> str | None:
        store = Store(settings.database_url)
        try:
            await store.migrate(revision)
            return await store.current_revision()
        finally:
            await store.close()

    try:
        current = _run(main)
    except Exception as exc:
        raise _fail(f"DATABASE_URL: migration failed: {exc}", code=1) from None
    typer.echo(f"database at revision {current}")


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="A kickoff.yml to check offline.", dir_okay=False)],
) -> None:
    """Check a repo config file offline; prints each problem with its line, column and key."""
    from bot.config import validate_file

    ok, lines = validate_file(file)
    for line in lines:
        typer.echo(line, err=not ok)
    raise typer.Exit(0 if ok else 1)


@config_app.command("schema")
def config_schema_command() -> None:
    """Print the JSON Schema of .github/kickoff.yml (for editors and CI)."""
    from bot.config import schema_json

    typer.echo(schema_json(), nl=False)


@app.command("run-agent")
def run_agent(
    spec: Annotated[Path | None, typer.Option("--spec", help="The run spec (JSON); it holds no secret.",
                                              dir_okay=False)] = None,
    spec_url: Annotated[str | None, typer.Option("--spec-url", help="Fetch the spec once from Kickoff, with the "
                                                 "ticket in KICKOFF_SPEC_TICKET (remote runners).")] = None,
    result: Annotated[Path | None, typer.Option(help="Write the result JSON here (default: WORKSPACE/result.json).",
                                                dir_okay=False)] = None,
    workspace: Annotated[Path | None, typer.Option(help="A new or empty directory to work in (default: a new "
                                                   "temporary directory).", file_okay=False)] = None,
) -> None:
    """The runner program: clone, run one agent, check, verify, commit, push and report one run.

    Credentials only from the environment: KICKOFF_GIT_TOKEN, KICKOFF_RUN_SECRET. See docs/runners.md.

    Exit 0 once the run has an outcome (even a failed one), 2 on a broken spec or environment.
    """
    from bot.runner_program import main as runner_main

    if (spec is None) == (spec_url is None):
        raise _fail("give either --spec FILE or --spec-url URL")
    if spec_url is not None:
        from bot.runner_program.fetch import SpecFetchError, spec_from_url

        try:
            spec = spec_from_url(spec_url)
        except SpecFetchError as exc:
            raise _fail(str(exc)) from None
    assert spec is not None
    raise typer.Exit(runner_main(spec, result_path=result, workspace=workspace))


@app.command("init-workflow")
def init_workflow(
    repository: Annotated[Path, typer.Argument(help="The repository's working tree.", file_okay=False)] = Path("."),
    url: Annotated[str | None, typer.Option(help="Where runners reach Kickoff (default: PUBLIC_URL).")] = None,
    version: Annotated[str | None, typer.Option(help="The kickoff-bot version the job installs (default: "
                                                "this one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a different existing workflow.")] = False,
) -> None:
    """Write .github/workflows/kickoff-agent.yml, the workflow the `github-actions` runner dispatches."""
    from bot.workflow import WorkflowError, write_workflow

    public_url = url or _settings().public_url
    try:
        path = write_workflow(repository, public_url, version=version or __version__, force=force)
    except WorkflowError as exc:
        raise _fail(str(exc), code=1) from None
    typer.echo(f"wrote {path}; commit it to the default branch, then set `runner: github-actions` in "
               f".github/kickoff.yml (or KICKOFF_RUNNER=github-actions)")


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        app(prog_name="kickoff")
    sys.exit(0)
