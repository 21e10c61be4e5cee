"""The set-up flow end to end in a real browser: headless Chromium (Debian's) drives `kickoff setup` against the
GitHub sandbox: open the page, click the button, GitHub creates the App and sends the browser back, `.env` holds a
key that works, and the process exits 0 having printed the installation URL and no secret."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from bot.sandbox import Sandbox
from bot.settings import Settings
from tests.setup.conftest import StartSetup, secret_values

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


def test_setup_end_to_end_in_chromium(
    sandbox: Sandbox, github: str, tmp_path: Path, run_setup: StartSetup
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extras)")
    process = run_setup(["--github-url", github, "--api-url", github, "--name", "Kickoff Browser"])
    page_url = process.page_url()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            page.goto(page_url)
            assert "Create Kickoff's GitHub App" in page.inner_text("h1")
            page.click("#create")
            page.wait_for_selector("#success", timeout=30_000)
            assert page.url.startswith(page_url + "callback?")
            assert page.inner_text("#success") == "Your GitHub App is ready"
            install = page.get_attribute("#install", "href")
        finally:
            browser.close()

    assert process.wait() == 0, process.errors
    assert install == f"{github}/apps/kickoff-browser/installations/new"
    printed = process.output + process.errors
    assert f"Next: install the App on your repositories: {install}" in process.output
    assert "Then start Kickoff: kickoff serve" in process.output

    env = tmp_path / ".env"
    assert env.stat().st_mode & 0o777 == 0o600
    for secret in secret_values(env):
        assert secret not in printed

    # The key works: an App JWT made with it is accepted by GitHub for this App.
    settings = Settings(_env_file=env)
    assert settings.github_api_url == github
    app_id, pem = settings.require_app_credentials()
    issued = int(time.time()) - 60
    token = jwt.encode({"iss": str(app_id), "iat": issued, "exp": issued + 540}, pem, algorithm="RS256")
    with httpx.Client(base_url=github, trust_env=False) as client:
        me = client.get("/app", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == app_id
    assert me.json()["name"] == "Kickoff Browser"
    assert settings.require_webhook_secret()
    assert [r.path for r in sandbox.requests if r.kind == "web"] == ["/settings/apps/new"]
