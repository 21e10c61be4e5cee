"""Fan-out latency: from a signed `issues.labeled` delivery to 10 local runner processes started.

The whole bot runs in this process, as `kickoff serve` does (uvicorn in a thread, SQLite in WAL mode, dispatcher and
scheduler in the server's loop), with GitHub behind the shared `FakeGitHub` (no network, so no GitHub latency is in
the figures). Each trial labels a new issue `agent:fix`; the repo config fans `fix` out to 10 agents; the local
backend starts a tiny stand-in runner for each (it writes its start time, sleeps, exits). Measured per trial, from
just before the POST:

- ack:      the 202;
- planned:  the 10 runs are in the database (the triggers feature's work);
- spawned:  the 10th runner process exists (its pid stored on the run);
- running:  the 10th runner has executed its first line (Python started).

Prints p50/p95 (ms) over the trials. Usage: `.venv/bin/python bench/fanout.py [--trials 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.github import Repository  # noqa: E402
from tests.deliveries import headers, load  # noqa: E402
from tests.fake_github import FakeGitHub  # noqa: E402

SECRET = "bench-secret"
AGENTS = 10
OWNER, REPO = "Codertocat", "Hello-World"
INSTALLATION = 7001
# The stand-in runner: records when Python got to its first line, then idles like an agent would.
RUNNER = (
    "import sys, time; t = time.time(); import json; a = sys.argv; "
    "spec = json.load(open(a[a.index('--spec') + 1])); log, pause = spec['agent']['command'][1:3]; "
    "open(log, 'a').write(f\"{spec['run_id']} {t}\\n\"); time.sleep(float(pause))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fake_github(starts: Path, pause: float) -> FakeGitHub:
    gh = FakeGitHub()
    gh.permissions[OWNER] = "write"
    gh.repositories[(OWNER, REPO)] = Repository(
        id=1296269, owner=OWNER, name=REPO, full_name=f"{OWNER}/{REPO}", default_branch="master", private=False,
        fork=False, archived=False, html_url=f"https://github.com/{OWNER}/{REPO}",
        clone_url=f"https://github.com/{OWNER}/{REPO}.git",
    )
    agents = {f"a{i}": {"adapter": "command", "command": ["bench", str(starts), str(pause)]} for i in range(AGENTS)}
    config = {"agents": agents, "tasks": {"fix": {"agents": list(agents)}},
              "limits": {"max_parallel_runs": AGENTS, "max_open_prs": 1000}}
    gh.set_file(OWNER, REPO, ".github/kickoff.yml", json.dumps(config))
    return gh


def labeled(issue: int) -> dict[str, Any]:
    payload = copy.deepcopy(load("issues.labeled.1.json"))
    payload["installation"] = {"id": INSTALLATION}
    payload["sender"] = {"login": OWNER, "id": 1, "type": "User"}
    payload["label"] = {**payload["label"], "name": "agent:fix"}
    payload["issue"]["number"] = issue
    payload["issue"]["labels"] = [payload["label"]]
    return payload


class Server:
    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_for(check: Any, timeout: float = 30.0) -> float:
    deadline = time.time() + timeout
    while True:
        if check():
            return time.time()
        if time.time() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.3, help="how long each stand-in runner lives (s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        starts = work / "starts.log"
        starts.touch()
        db = work / "kickoff.db"
        from bot.settings import Settings
        from bot.web import create_app

        settings = Settings(_env_file=None, WEBHOOK_SECRET=SECRET, DATABASE_URL=f"sqlite:///{db}",
                            KICKOFF_MAX_PARALLEL_RUNS=AGENTS, LOG_LEVEL="WARNING",
                            KICKOFF_LOCAL_RUNNER_COMMAND=[sys.executable, "-S", "-c", RUNNER],
                            KICKOFF_WORKSPACE_DIR=str(work / "workspaces"))
        gh = fake_github(starts, args.pause)
        port = free_port()
        results: dict[str, list[float]] = {"ack": [], "planned": [], "spawned": [], "running": []}
        with Server(create_app(settings, github=gh), port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            reader = sqlite3.connect(db, timeout=30)
            for trial in range(args.trials + 2):  # two warm-up trials
                issue = 1000 + trial
                gh.set_issue(OWNER, REPO, issue, title="Bug", body="x", author=None)
                gh.labels[(OWNER, REPO, issue)] = ["agent:fix"]
                body = json.dumps(labeled(issue)).encode()
                sent = headers(SECRET, "issues", body, str(uuid.uuid4()))
                t0 = time.time()
                response = http.post("/api/github/webhooks", content=body, headers=sent)
                ack = time.time()
                assert response.status_code == 202, response.text

                def count(condition: str, issue: int = issue) -> int:
                    row = reader.execute(f"SELECT count(*) FROM runs WHERE issue_number = ? AND {condition}",  # noqa: S608
                                         (issue,)).fetchone()
                    return int(row[0])

                planned = wait_for(lambda: count("1 = 1") == AGENTS)
                spawned = wait_for(lambda: count("runner_ref IS NOT NULL") == AGENTS)
                ids = {row[0] for row in reader.execute("SELECT id FROM runs WHERE issue_number = ?", (issue,))}

                def started(ids: set[int] = ids) -> list[float]:
                    lines = [line.split() for line in starts.read_text().splitlines()]
                    return [float(t) for run, t in lines if int(run) in ids]

                wait_for(lambda: len(started()) == AGENTS)
                running = max(started())
                wait_for(lambda: count("state IN ('succeeded','no_changes','failed','cancelled','timed_out')")
                         == AGENTS)
                if trial >= 2:
                    for name, at in (("ack", ack), ("planned", planned), ("spawned", spawned), ("running", running)):
                        results[name].append((at - t0) * 1000)
            reader.close()
    print(f"fan-out of {AGENTS} runs, {args.trials} trials (ms from the POST):")
    print(f"{'stage':<10}{'p50':>8}{'p95':>8}{'max':>8}")
    for name, values in results.items():
        print(f"{name:<10}{statistics.median(values):>8.1f}{percentile(values, 0.95):>8.1f}{max(values):>8.1f}")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
