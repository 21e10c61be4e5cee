"""The `kickoff` command as a user runs it: real processes, clear one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.store.db import head_revision
from tests.deliveries import WEBHOOKS, headers
from tests.support import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[1]
KICKOFF = [sys.executable, "-m", "bot"]


def run(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY", "DATABASE_URL", "PRIVATE_KEY_PATH"}}
    return subprocess.run([*KICKOFF, *args], cwd=cwd, env={**clean, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_version(tmp_path: Path) -> None:
    result = run(["version"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "0.1.0"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "WEBHOOK_SECRET is not set"),
        ({"WEBHOOK_SECRET": "x", "PRIVATE_KEY": "garbage"}, "PRIVATE_KEY"),
        ({"WEBHOOK_SECRET": "x", "APP_ID": "abc"}, "APP_ID"),
        ({"WEBHOOK_SECRET": "x", "DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"WEBHOOK_SECRET": "x", "DATABASE_URL": "nonsense"}, "DATABASE_URL"),
    ],
)
def test_serve_refuses_to_start_with_one_clear_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run(["serve", "--port", str(free_port())], tmp_path, **env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kickoff: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_local_agents_without_their_sandbox_are_refused_at_start_up(tmp_path: Path, command: list[str]) -> None:
    """No bubblewrap: `serve` and `worker` (which run local agents) refuse in one line that names the opt-out."""
    database = f"sqlite:///{tmp_path / 'k.db'}"
    assert run(["db", "upgrade"], tmp_path, DATABASE_URL=database).returncode == 0
    result = run(command, tmp_path, WEBHOOK_SECRET="x", DATABASE_URL=database,
                 KICKOFF_BWRAP=str(tmp_path / "no-bwrap"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("kickoff: ")]
    assert len(lines) == 1, result.stderr
    assert "the local runner needs its agent sandbox" in lines[0]
    assert "KICKOFF_UNSAFE_NO_SANDBOX=1" in lines[0]
    assert "Traceback" not in result.stderr


def test_the_demo_without_the_sandbox_stops_before_any_agent_runs(tmp_path: Path) -> None:
    result = run(["demo"], tmp_path, timeout=120, KICKOFF_BWRAP=str(tmp_path / "no-bwrap"), COLUMNS="400")
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "kickoff demo: could not start the sandbox and Kickoff" in said
    assert "the local runner needs its agent sandbox" in said
    assert "KICKOFF_UNSAFE_NO_SANDBOX=1" in said
    assert "Traceback" not in said
    assert "runs planned" not in said  # nothing was labelled, nothing ran


@pytest.mark.postgres
def test_serve_on_unmigrated_postgresql_says_to_upgrade(tmp_path: Path) -> None:
    from tests.support import POSTGRES, postgres_database

    if not POSTGRES:
        pytest.skip("PostgreSQL is not reachable")
    for url in postgres_database(migrate=False):
        result = run(["serve", "--port", str(free_port())], tmp_path, WEBHOOK_SECRET="x", DATABASE_URL=url)
        assert result.returncode == 2
        assert "kickoff db upgrade" in result.stderr
        assert "Traceback" not in result.stderr
        upgraded = run(["db", "upgrade"], tmp_path, DATABASE_URL=url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"database at revision {head_revision()}" in upgraded.stdout


def test_receive_runs_a_payload_through_the_dispatcher(tmp_path: Path) -> None:
    payload = WEBHOOKS / "installation.created.1.json"
    db = f"sqlite:///{tmp_path}/k.db"
    first = run(["receive", "--event", "installation", "--payload", str(payload), "--delivery-id", "r1"],
                tmp_path, DATABASE_URL=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "r1: done"
    again = run(["receive", "-e", "installation", "-p", str(payload), "--delivery-id", "r1"], tmp_path,
                DATABASE_URL=db)
    assert again.stdout.strip() == "r1: already in the inbox, not run again"
    import sqlite3

    with sqlite3.connect(tmp_path / "k.db") as conn:
        installation_id = json.loads(payload.read_text())["installation"]["id"]
        assert conn.execute("SELECT id FROM installations").fetchall() == [(installation_id,)]


def test_receive_reports_a_handler_failure(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"action": "created", "installation": {"id": 5, "account": "not-an-object"}}))
    result = run(["receive", "-e", "installation", "-p", str(broken), "--delivery-id", "r2"], tmp_path,
                 DATABASE_URL=f"sqlite:///{tmp_path}/k.db", KICKOFF_MAX_ATTEMPTS="1")
    assert result.returncode == 0
    assert result.stdout.startswith("r2: dead (")


@pytest.mark.parametrize(("content", "message"), [
    ("{nope", "not valid JSON"), ("[1]", "JSON object"),
    ('{"installation": {"id": 9223372036854775808}}', "installation.id"),
])
def test_receive_rejects_bad_payload_files(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = run(["receive", "-e", "issues", "-p", str(bad)], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_end_to_end(tmp_path: Path) -> None:
    """`kickoff serve` as a real process: a signed delivery is acknowledged, handled, and listed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"APP_ID", "PRIVATE_KEY"}}
    env.update(PYTHONPATH=str(ROOT), WEBHOOK_SECRET=WEBHOOK_SECRET, DATABASE_URL=f"sqlite:///{tmp_path}/k.db",
               KICKOFF_POLL_SECONDS="0.1")
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([*KICKOFF, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        body = (WEBHOOKS / "installation.created.1.json").read_bytes()
        response = httpx.post(f"{base}/api/github/webhooks", content=body,
                              headers=headers(WEBHOOK_SECRET, "installation", body, "e2e-1"))
        assert response.status_code == 202
        for _ in range(100):
            listed = httpx.get(f"{base}/api/deliveries", params={"status": "done"}).json()
            if listed:
                break
            time.sleep(0.05)
        assert [d["id"] for d in listed] == ["e2e-1"]
        assert httpx.get(f"{base}/api/deliveries", params={"status": "bogus"}).status_code == 400
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.returncode in (0, -15)  # uvicorn re-raises the SIGTERM it handled, after a clean shutdown
    log_text = (tmp_path / "serve.log").read_text()
    assert WEBHOOK_SECRET not in log_text
    assert "[e2e-1] handled installation.created" in log_text
    assert "Application shutdown complete" in log_text


def test_config_validate_and_schema(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("tasks:\n  fix: {agents: [claude, codex]}\nlimits:\n  max_open_prs: 3\n")
    result = run(["config", "validate", str(good)], tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"{good}: valid")
    bad = tmp_path / "bad.yml"
    bad.write_text("limits:\n  max_open_prs: zero\nbogus: 1\n")
    result = run(["config", "validate", str(bad)], tmp_path)
    assert result.returncode == 1
    assert f"{bad}:2:3: limits.max_open_prs" in result.stderr
    assert "unknown key `bogus`" in result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("limits: [unclosed\n")
    result = run(["config", "validate", str(broken)], tmp_path)
    assert result.returncode == 1
    assert f"{broken}:" in result.stderr
    assert "Traceback" not in result.stderr
    schema = run(["config", "schema"], tmp_path)
    assert schema.returncode == 0
    assert schema.stdout == (ROOT / "docs" / "kickoff-config.schema.json").read_text()
