"""`kickoff status` and the JSON twins show the same picture as the dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import update

from bot.store.db import Store
from bot.store.models import PullRequest
from tests.dashboard.conftest import kickoff, on_store
from tests.dashboard.scenario import NOT_IN_ORDER, QUEUE_ORDER, REPO, Seeded
from tests.support import ServerThread, make_settings


def test_kickoff_status_prints_the_picture(database_url: str, seeded: Seeded, tmp_path: Path) -> None:
    result = kickoff(["status"], tmp_path, DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ("1 installation(s), 2 repositories; deliveries: 0 pending, 0 processing, 1 retrying, 1 done (24 h), "
            "1 dead") in out
    for title in ("Installations", f"Review queue of {REPO} into main", f"Runs in {REPO}", "Runs in octo/api",
                  "Failed and dead deliveries"):
        assert title in out
    queue = out[out.index(f"Review queue of {REPO}"):out.index(f"Runs in {REPO}")]
    rows = [line for line in queue.splitlines() if "│ #" in line]
    assert [line.split("│")[2].strip() for line in rows] == [f"#{n}" for n in [*QUEUE_ORDER, *NOT_IN_ORDER]]
    assert [line.split("│")[1].strip() for line in rows] == ["1", "2", "3", "—", "—"]
    assert "Next for review" in rows[0]
    runs = out[out.index(f"Runs in {REPO}"):out.index("Failed and dead deliveries")]
    assert "running" in runs
    assert "agent running" in runs
    assert "$0.42" in runs
    assert "PR #21" in runs
    assert "the verify command failed" in runs
    deliveries = out[out.index("Failed and dead deliveries"):]
    assert seeded.dead_delivery in deliveries
    assert "issue_comment.created" in deliveries

    only = kickoff(["status", "--repo", "octo/api"], tmp_path, DATABASE_URL=database_url)
    assert only.returncode == 0, only.stderr
    assert "Runs in octo/api" in only.stdout
    assert f"Runs in {REPO}" not in only.stdout


def test_json_twins(database_url: str, seeded: Seeded, serve: Callable[..., ServerThread]) -> None:
    server = serve(make_settings(database_url))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        queue = client.get("/api/queue", params={"repo": REPO}).json()
        assert [(e["position"], e["number"]) for e in queue] == [
            *[(i, n) for i, n in enumerate(QUEUE_ORDER, 1)], *[(None, n) for n in NOT_IN_ORDER]
        ]
        assert queue[0]["check_title"] == "Next for review"
        assert queue[1]["priority"] == "high"
        assert {e["repository"] for e in client.get("/api/queue").json()} == {REPO, "octo/api"}

        runs = client.get("/api/runs", params={"repo": REPO}).json()
        assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
        running = next(r for r in runs if r["id"] == seeded.running_run)
        assert (running["state"], running["progress"], running["runner"]) == ("running", "agent running",
                                                                              "github-actions")
        assert running["duration_seconds"] >= 270
        assert {r["repository"] for r in runs} == {REPO}

        api = client.get("/api/queue", params={"repo": "octo/api"}).json()
        assert [(e["position"], e["number"], e["check_title"]) for e in api] == [(1, 4, None)]  # computed: no check yet

        async def reorder(store: Store) -> None:
            # The queue service's last word wins over the model's guess (it knows labels and the repo's config).
            async with store.sessions.begin() as session:
                for number, position in ((21, 1), (23, 3)):
                    memory = {"check": {"title": f"position {position}"}, "position": position}
                    await session.execute(update(PullRequest).where(PullRequest.number == number)
                                          .values(queue_check=json.dumps(memory)))

        on_store(database_url, reorder)
        queue = client.get("/api/queue", params={"repo": REPO}).json()
        assert [(e["position"], e["number"]) for e in queue][:3] == [(1, 21), (2, 22), (3, 23)]
        assert queue[0]["check_title"] == "position 1"

        dead = client.get("/api/deliveries", params={"status": "dead"}).json()
        assert [d["id"] for d in dead] == [seeded.dead_delivery]
        assert client.get("/api/queue", params={"repo": "no-slash"}).status_code == 400
