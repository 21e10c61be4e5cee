"""Simulated CI: the repository's command runs in a fresh checkout and reports a `ci` check run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, Receiver

BASE = f"/repos/{OWNER}/{REPO}"
CHECK = [
    sys.executable,
    "-c",
    "import pathlib, sys; t = pathlib.Path('src/app.py').read_text(); print(t); sys.exit('boom' in t)",
]


def ci_runs(client: httpx.Client, installed: Installed, ref: str) -> list[dict[str, object]]:
    r = client.get(f"{BASE}/commits/{ref}/check-runs", headers=installed.headers, params={"check_name": "ci"})
    runs: list[dict[str, object]] = r.json()["check_runs"]
    return runs


def test_ci_reports_success_and_failure(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    sandbox.set_ci(OWNER, REPO, CHECK)
    good = sandbox.push_commit(OWNER, REPO, "feature", {"src/app.py": "print('fine')\n"})
    sandbox.open_pull(OWNER, REPO, "feature", title="Feature")
    sandbox.wait_idle()
    [run] = ci_runs(client, hooked, good)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["app"]["slug"] == "sandbox-ci"  # type: ignore[index]
    assert "print('fine')" in run["output"]["summary"]  # type: ignore[index]

    bad = sandbox.push_commit(OWNER, REPO, "feature", {"src/app.py": "boom\n"})
    sandbox.wait_idle()
    [run] = ci_runs(client, hooked, bad)
    assert run["conclusion"] == "failure"
    assert "boom" in run["output"]["summary"]  # type: ignore[index]
    pr = client.get(f"{BASE}/pulls/1", headers=hooked.headers).json()
    assert pr["mergeable_state"] == "unstable"

    checks = [
        (r.event, r.action, r.payload.get("check_run", r.payload.get("check_suite", {})).get("conclusion"))
        for r in receiver.received
        if r.event.startswith("check_")
    ]
    assert checks == [
        ("check_run", "created", None),
        ("check_run", "completed", "success"),
        ("check_suite", "completed", "success"),
        ("check_run", "created", None),
        ("check_run", "completed", "failure"),
        ("check_suite", "completed", "failure"),
    ]


def test_ci_rerun_and_timeout(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.set_ci(OWNER, REPO, [sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    sha = sandbox.push_commit(OWNER, REPO, "slow", {"x": "y"})
    sandbox.open_pull(OWNER, REPO, "slow", title="Slow")
    sandbox.wait_idle()
    [run] = ci_runs(client, installed, sha)
    assert run["conclusion"] == "timed_out"
    sandbox.set_ci(OWNER, REPO, [sys.executable, "-c", "print('ok')"])
    r = client.post(f"{BASE}/check-runs/{run['id']}/rerequest", headers=installed.headers)
    assert r.status_code == 201
    sandbox.wait_idle()
    [latest] = ci_runs(client, installed, sha)
    assert latest["conclusion"] == "success"


def test_ci_with_a_missing_program(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.set_ci(OWNER, REPO, ["definitely-not-a-program-xyz"])
    sha = sandbox.push_commit(OWNER, REPO, "feature", {"x": "y"})
    sandbox.open_pull(OWNER, REPO, "feature", title="Feature")
    sandbox.wait_idle()
    [run] = ci_runs(client, installed, sha)
    assert run["conclusion"] == "failure"
    assert run["output"]["title"] == "CI could not start"  # type: ignore[index]


def test_closing_the_sandbox_stops_running_ci(tmp_path: Path) -> None:
    started = time.monotonic()
    with Sandbox(tmp_path) as sb:
        sb.create_repo(OWNER, REPO)
        sb.set_ci(OWNER, REPO, [sys.executable, "-c", "import time; time.sleep(60)"])
        sb.push_commit(OWNER, REPO, "feature", {"x": "y"})
        sb.open_pull(OWNER, REPO, "feature", title="Feature")
        time.sleep(0.3)
    assert time.monotonic() - started < 20
