"""Crash safety with real processes: a `kickoff worker` killed mid-handler (`kill -9`) loses its lease to another:
once the lease runs out, and at once to a worker of its host that sees its process gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.store.db import Store
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import utcnow

ROOT = Path(__file__).resolve().parents[1]


def start_worker(database_url: str, tmp_path: Path, name: str, **settings: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "KICKOFF_PLUGINS": "tests.plugins.crash:router",
        "KICKOFF_LEASE_SECONDS": "1.5",
        "KICKOFF_POLL_SECONDS": "0.1",
        "KICKOFF_HANDLER_TIMEOUT": "3600",
        "CRASH_EFFECTS_DB": str(tmp_path / "effects.db"),
        "CRASH_MARKER": str(tmp_path / "marker"),
        "CRASH_HANG_FIRST": "1",
        **settings,
    }
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)


async def _insert(database_url: str) -> None:
    store = Store(database_url)
    try:
        await store.migrate()
        await Inbox(store).insert_many([NewDelivery(
            id="crash-1", event="crash_test", action="opened", installation_id=1, repository="o/r",
            payload=json.dumps({"action": "opened"}), received_at=utcnow(),
        )])
    finally:
        await store.close()


async def _status(database_url: str) -> tuple[str, int]:
    store = Store(database_url)
    try:
        row = await Inbox(store).get("crash-1")
        assert row is not None
        return row.status, row.attempts
    finally:
        await store.close()


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_killed_worker_loses_its_delivery_to_another_and_the_effect_happens_once(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_insert(database_url))
    marker = tmp_path / "marker"
    first = start_worker(database_url, tmp_path, "first")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(marker.exists, 30, "the first worker to enter the handler")
        assert int(marker.read_text()) == first.pid
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert asyncio.run(_status(database_url)) == ("processing", 1)

        second = start_worker(database_url, tmp_path, "second")
        wait_for(lambda: asyncio.run(_status(database_url))[0] == "done", 30, "the second worker to finish")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    assert second is not None
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    assert asyncio.run(_status(database_url)) == ("done", 2)
    with sqlite3.connect(tmp_path / "effects.db") as conn:
        attempts = conn.execute("SELECT pid FROM attempts ORDER BY rowid").fetchall()
        effects = conn.execute("SELECT delivery_id FROM effects").fetchall()
    assert [pid for (pid,) in attempts] == [first.pid, second.pid]
    assert effects == [("crash-1",)]


@pytest.mark.slow
def test_a_worker_killed_mid_handler_has_its_lease_taken_over_by_a_running_worker_long_before_it_runs_out(
    database_url: str, tmp_path: Path
) -> None:
    """An hour's lease and an hour's heartbeat timeout: only the dead worker's own pid, gone, can let the other
    worker (already running beside it, on this host) take the delivery over, and it does at its next heartbeat."""
    asyncio.run(_insert(database_url))
    marker = tmp_path / "marker"
    patient = {"KICKOFF_LEASE_SECONDS": "3600", "KICKOFF_WORKER_TIMEOUT_SECONDS": "3600",
               "KICKOFF_HEARTBEAT_SECONDS": "0.2"}
    first = start_worker(database_url, tmp_path, "first", **patient)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(marker.exists, 60, "the first worker to enter the handler")
        assert int(marker.read_text()) == first.pid
        second = start_worker(database_url, tmp_path, "second", **patient)
        wait_for(lambda: (tmp_path / "second.log").read_text().count("worker started") > 0, 60,
                 "the second worker to start")
        assert asyncio.run(_status(database_url)) == ("processing", 1)  # the first still holds it, alive
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        # Bounded only so that a broken take-over fails the test instead of hanging it (the lease is an hour).
        wait_for(lambda: asyncio.run(_status(database_url))[0] == "done", 60, "the second worker to take it over")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    assert second is not None
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    assert "is dead: its process" in (tmp_path / "second.log").read_text()
    with sqlite3.connect(tmp_path / "effects.db") as conn:
        attempts = conn.execute("SELECT pid FROM attempts ORDER BY rowid").fetchall()
    assert [pid for (pid,) in attempts] == [first.pid, second.pid]
