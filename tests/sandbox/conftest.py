"""Fixtures for the sandbox's tests: a sandbox (failing the test on any fidelity violation), its server, an App
installed on a repository, and a webhook receiver that checks signatures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.sandbox import Sandbox, SandboxServer
from tests.sandbox.support import OWNER, REPO, Installed, Receiver, app_jwt


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox with fast webhook retries; the test fails if anything it served or sent broke GitHub's description."""
    sb = Sandbox(tmp_path / "github", retry_delays=(0.05, 0.1))
    try:
        yield sb
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


@pytest.fixture
def url(sandbox: Sandbox) -> Iterator[str]:
    with SandboxServer(sandbox) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        yield c


@pytest.fixture
def installed(sandbox: Sandbox, url: str, client: httpx.Client) -> Installed:
    creds = sandbox.create_app("Kickoff")
    sandbox.create_repo(OWNER, REPO, {"README.md": "# demo\n", "src/app.py": "print('hi')\n"})
    installation_id = sandbox.install(creds.app_id, OWNER)
    r = client.post(
        f"/app/installations/{installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(creds)}"},
    )
    assert r.status_code == 201, r.text
    return Installed(creds, installation_id, r.json()["token"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(secret="s3cret-" + os.urandom(4).hex())
    rec.start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture
def hooked(sandbox: Sandbox, installed: Installed, receiver: Receiver) -> Installed:
    """The installed App with its webhook pointing at the receiver (events from now on)."""
    assert installed.creds.webhook_secret
    receiver.secret = installed.creds.webhook_secret
    sandbox.set_webhook(installed.creds.app_id, receiver.url)
    return installed
