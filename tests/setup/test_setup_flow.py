"""`kickoff setup` without a browser: URLs, the `.env` file, the state check, and the code conversion against the
GitHub sandbox, in process and as a real `kickoff setup` process."""

from __future__ import annotations

import html
import json
import re
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from bot.sandbox import Sandbox
from bot.settings import Settings
from bot.setup import (
    AppCredentials,
    SetupError,
    SetupFlow,
    api_url_for,
    build_app,
    convert_code,
    env_text,
    load_manifest,
    new_app_url,
    prepare_manifest,
    write_env,
)
from tests.setup.conftest import ROOT, StartSetup, secret_values


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def creds(**overrides: Any) -> AppCredentials:
    values: dict[str, Any] = {
        "app_id": 7, "slug": "kickoff-test", "name": "Kickoff Test", "html_url": "https://github.com/apps/kickoff-test",
        "client_id": "Iv1.abc", "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\nxyz=\n-----END RSA PRIVATE KEY-----\n",
        "webhook_secret": "whsec-123456", "client_secret": "cs-abcdef0123",
    }
    return AppCredentials(**{**values, **overrides})


def read_settings(env_file: Path) -> Settings:
    return Settings(_env_file=env_file)


def app_jwt(app_id: int, pem: str) -> str:
    issued = int(time.time()) - 60
    return jwt.encode({"iss": str(app_id), "iat": issued, "exp": issued + 540}, pem, algorithm="RS256")


def form_of(page: str) -> tuple[str, str]:
    """The set-up page's form: where it posts, and the manifest it carries."""
    action = re.search(r'<form id="manifest-form" action="([^"]+)"', page)
    manifest = re.search(r'<input type="hidden" name="manifest" value="([^"]+)">', page)
    assert action, page
    assert manifest, page
    return html.unescape(action.group(1)), html.unescape(manifest.group(1))


@pytest.mark.parametrize(
    ("github_url", "api_url"),
    [
        ("https://github.com", "https://api.github.com"),
        ("https://github.com/", "https://api.github.com"),
        ("https://octocorp.ghe.com", "https://api.octocorp.ghe.com"),
        ("https://ghe.example.com", "https://ghe.example.com/api/v3"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/api/v3"),
    ],
)
def test_the_api_url_follows_the_github_url(github_url: str, api_url: str) -> None:
    assert api_url_for(github_url) == api_url


def test_the_manifest_goes_to_the_account_or_the_organization() -> None:
    assert new_app_url("https://github.com", None) == "https://github.com/settings/apps/new"
    assert new_app_url("https://ghe.example.com/", "my org") == (
        "https://ghe.example.com/organizations/my%20org/settings/apps/new"
    )
    with pytest.raises(SetupError, match="--github-url"):
        new_app_url("github.com", None)


def test_the_manifest_is_filled_in_for_this_session() -> None:
    manifest = load_manifest(ROOT / "app-manifest.yml")
    sent = prepare_manifest(manifest, webhook_url="https://k.example/api/github/webhooks",
                            redirect_url="http://127.0.0.1:3000/callback", homepage="https://k.example", name="Ours")
    assert sent["name"] == "Ours"
    assert sent["url"] == "https://k.example"
    assert sent["hook_attributes"] == {"url": "https://k.example/api/github/webhooks", "active": True}
    assert sent["redirect_url"] == "http://127.0.0.1:3000/callback"
    assert sent["default_permissions"] == manifest["default_permissions"]
    assert manifest["hook_attributes"]["url"] == ""  # the loaded manifest is not changed


def test_env_file_reads_back_as_the_settings(tmp_path: Path) -> None:
    app = creds()
    written = write_env(tmp_path / ".env", env_text(app, "https://api.github.com"))
    text = written.read_text()
    assert "GITHUB_API_URL" not in text  # the default is not written
    key_line = next(line for line in text.splitlines() if line.startswith("PRIVATE_KEY="))
    assert key_line.startswith('PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----\\n')
    assert key_line.endswith('\\n"')
    settings = read_settings(written)
    assert settings.app_id == 7
    assert settings.private_key_pem() == app.pem
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "whsec-123456"
    assert "GITHUB_CLIENT_ID=Iv1.abc" in text
    assert "GITHUB_CLIENT_SECRET=cs-abcdef0123" in text

    ghes = write_env(tmp_path / "ghes.env", env_text(app, "https://ghe.example.com/api/v3"))
    assert read_settings(ghes).github_api_url == "https://ghe.example.com/api/v3"


def test_env_values_that_need_quoting_are_quoted(tmp_path: Path) -> None:
    odd = creds(webhook_secret='a "quoted" secret # not a comment', client_secret="x\\y")
    written = write_env(tmp_path / ".env", env_text(odd, "https://api.github.com"))
    settings = read_settings(written)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == 'a "quoted" secret # not a comment'


def test_env_file_is_private_and_never_overwritten_unasked(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://db/kickoff\n")
    env.chmod(0o644)

    first = write_env(env, "APP_ID=1\n")
    assert first == tmp_path / ".env.new"
    assert env.read_text() == "DATABASE_URL=postgresql://db/kickoff\n"
    assert mode(first) == 0o600
    second = write_env(env, "APP_ID=2\n")
    assert second == tmp_path / ".env.new.2"
    assert first.read_text() == "APP_ID=1\n"

    forced = write_env(env, "APP_ID=3\n", force=True)
    assert forced == env
    assert env.read_text() == "APP_ID=3\n"
    assert mode(env) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", ".env.new", ".env.new.2"]


def test_a_new_env_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        written = write_env(tmp_path / ".env", "APP_ID=1\n")
    finally:
        os.umask(old)
    assert mode(written) == 0o600


def flow_for(github: str, tmp_path: Path, **kwargs: Any) -> SetupFlow:
    manifest = prepare_manifest(load_manifest(ROOT / "app-manifest.yml"), webhook_url=f"{github}/hook",
                                redirect_url="http://127.0.0.1:9/callback", homepage=github)
    return SetupFlow(manifest=manifest, action_url=new_app_url(github, None), api_url=github,
                     env_file=tmp_path / ".env", force=False, page_url="http://127.0.0.1:9/", **kwargs)


async def test_wrong_or_missing_state_is_refused_and_nothing_happens(github: str, tmp_path: Path) -> None:
    flow = flow_for(github, tmp_path)
    finished: list[bool] = []
    flow.on_done = lambda: finished.append(True)
    transport = httpx.ASGITransport(app=build_app(flow))
    async with httpx.AsyncClient(transport=transport, base_url="http://setup") as client:
        for query in ({"code": "abc", "state": "forged"}, {"code": "abc"}, {"state": flow.state[:-1] + "x"}):
            response = await client.get("/callback", params=query)
            assert response.status_code == 400
            assert "does not match this set-up session" in response.text
            assert "nothing was done" in response.text
        no_code = await client.get("/callback", params={"state": flow.state})
        assert no_code.status_code == 400
        assert "no code" in no_code.text
    assert flow.result is None
    assert finished == []
    assert list(tmp_path.glob(".env*")) == []


async def test_the_flow_against_the_sandbox_in_process(sandbox: Sandbox, github: str, tmp_path: Path) -> None:
    flow = flow_for(github, tmp_path)
    finished: list[bool] = []
    flow.on_done = lambda: finished.append(True)
    transport = httpx.ASGITransport(app=build_app(flow))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://setup") as setup,
        httpx.AsyncClient(base_url=github, trust_env=False) as gh,
    ):
        page = await setup.get("/")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        action, manifest_json = form_of(page.text)
        assert action == f"{github}/settings/apps/new?state={flow.state}"
        sent = json.loads(manifest_json)
        assert sent["hook_attributes"]["url"] == f"{github}/hook"
        assert sent["redirect_url"] == "http://127.0.0.1:9/callback"

        created = await gh.post(action, data={"manifest": manifest_json})
        assert created.status_code == 302
        back = urlsplit(created.headers["location"])
        assert back.path == "/callback"
        query = {k: v[0] for k, v in parse_qs(back.query).items()}
        assert query["state"] == flow.state

        done = await setup.get("/callback", params=query)
        assert done.status_code == 200, done.text
        assert "Your GitHub App is ready" in done.text
        assert f"{github}/apps/kickoff/installations/new" in done.text
        assert finished == [True]

        again = await setup.get("/")
        assert "Your GitHub App is ready" in again.text

        env = tmp_path / ".env"
        assert mode(env) == 0o600
        settings = read_settings(env)
        assert settings.github_api_url == github
        app_id, pem = settings.require_app_credentials()
        me = await gh.get("/app", headers={"Authorization": f"Bearer {app_jwt(app_id, pem)}"})
        assert me.status_code == 200
        assert me.json()["id"] == app_id
        assert me.json()["permissions"] == sent["default_permissions"]
        assert sorted(me.json()["events"]) == sorted(sent["default_events"])

        # The code is single-use: a replayed redirect does not create or write anything new.
        replay = await setup.get("/callback", params=query)
        assert replay.status_code == 200
        assert sorted(p.name for p in tmp_path.glob(".env*")) == [".env"]


async def test_a_code_github_does_not_know_is_reported(github: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"HTTP 404.*single-use"):
        await convert_code(github, "0123456789abcdef")
    with pytest.raises(SetupError, match="unexpected shape"):
        await convert_code(github, "../../app")
    flow = flow_for(github, tmp_path)
    transport = httpx.ASGITransport(app=build_app(flow))
    async with httpx.AsyncClient(transport=transport, base_url="http://setup") as client:
        response = await client.get("/callback", params={"code": "0123456789abcdef", "state": flow.state})
    assert response.status_code == 502
    assert "GitHub refused the conversion" in response.text
    assert flow.result is None


def test_the_conversion_as_a_real_process(github: str, tmp_path: Path, run_setup: StartSetup) -> None:
    """`kickoff setup` as a user runs it, with plain HTTP standing in for the browser."""
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\n")
    process = run_setup(["--github-url", github, "--api-url", github, "--name", "Kickoff Plain",
                         "--webhook-url", "https://kickoff.example/api/github/webhooks"])
    page_url = process.page_url()
    with httpx.Client(trust_env=False, timeout=30) as client:
        forged = client.get(page_url + "callback", params={"code": "abc", "state": "forged"})
        assert forged.status_code == 400
        action, manifest_json = form_of(client.get(page_url).text)
        assert json.loads(manifest_json)["name"] == "Kickoff Plain"
        created = client.post(action, data={"manifest": manifest_json})
        assert created.status_code == 302
        done = client.get(created.headers["location"])
        assert done.status_code == 200
        assert "Your GitHub App is ready" in done.text
    assert process.wait() == 0, process.errors
    assert (tmp_path / ".env").read_text() == "LOG_LEVEL=DEBUG\n"
    written = tmp_path / ".env.new"
    assert mode(written) == 0o600
    settings = read_settings(written)
    assert settings.app_id is not None
    assert f"{github}/apps/kickoff-plain/installations/new" in process.output
    assert "kickoff serve" in process.output
    assert ".env.new" in process.output
    assert "--force" in process.errors
    for secret in secret_values(written):
        assert secret not in process.output + process.errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifest", "missing.yml"], "kickoff: --manifest: missing.yml is not a file"),
        (["--env-file", "no/such/dir/.env"], "kickoff: --env-file: cannot write in {tmp}/no/such/dir"),
        (["--github-url", "github.com"], "kickoff: --github-url: 'github.com' is not an http(s) URL"),
    ],
)
def test_setup_fails_clearly_before_serving(
    tmp_path: Path, run_setup: StartSetup, args: list[str], message: str
) -> None:
    process = run_setup(args)
    assert process.wait() == 1
    assert process.errors.strip() == message.format(tmp=tmp_path)
    assert "Open http" not in process.output
