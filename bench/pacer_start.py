"""Starting runs with a saturated write pacer: from an `issues.labeled` delivery to its runs queued (claimable).

Each trial: a migrated SQLite database, the real `GitHubGateway` over respx (no network, so no GitHub latency), the
real `Dispatcher` and handlers, and the installation's pacer saturated at GitHub's documented limit (80 writes in the
last minute, `bot/github/pacing.py`). The gateway's sleep is a gate: a paced write that must wait records how long the
pacer asked for and is held until the trial has seen the runs in the database, so nothing sleeps for real.

Prints, over the trials, p50/p95 (ms) from the delivery to both runs being queued in the database, and the wait the
pacer gave the trigger's first paced write (the 👀 reaction): the time the old ordering, which planned runs after
the 👀 (and the tracking comment), would have added before the scheduler could claim anything.

Usage: `.venv/bin/python bench/pacer_start.py [--trials 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.github import GitHubGateway  # noqa: E402
from bot.github.pacing import WRITE_LIMITS  # noqa: E402
from tests.github.harness import FakeTime, TokenMint  # noqa: E402
from tests.handlers.harness import APP_ID, CONFIG, INSTALLATION_ID, ISSUE, OWNER, REPO, harness, labeled  # noqa: E402

BASE_URL = "https://ghe.example.com/api/v3"
REPO_PATH = f"/repos/{OWNER}/{REPO}"
KICKOFF_YML = "tasks:\n  fix: {agents: [claude, codex]}\n"


def rsa_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class Gate:
    def __init__(self) -> None:
        self.clock = FakeTime()
        self.opened = asyncio.Event()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.opened.wait()
        self.clock.advance(seconds)


def mock(router: respx.MockRouter, gate: Gate) -> None:
    router.post(f"/app/installations/{INSTALLATION_ID}/access_tokens").mock(side_effect=TokenMint(gate.clock))
    router.get(f"/repos/{OWNER}/.github/contents/{CONFIG}").respond(404, json={"message": "Not Found"})
    router.get(f"{REPO_PATH}/contents/{CONFIG}").respond(json={
        "type": "file", "encoding": "base64", "sha": "5b1d3c0ffee", "path": CONFIG,
        "content": base64.b64encode(KICKOFF_YML.encode()).decode(),
    })
    router.get(f"{REPO_PATH}/collaborators/{OWNER}/permission").respond(
        json={"permission": "write", "role_name": "maintain", "user": {"login": OWNER}})
    router.get(f"{REPO_PATH}/issues/{ISSUE}/labels").respond(json=[{"name": "agent:fix"}])
    router.get(f"{REPO_PATH}/issues/{ISSUE}/comments").respond(json=[])
    router.post(f"{REPO_PATH}/issues/{ISSUE}/comments").respond(201, json={"id": 9001})
    router.post(f"{REPO_PATH}/issues/{ISSUE}/reactions").respond(201, json={"id": 1})
    router.delete(url__regex=rf"{REPO_PATH}/issues/{ISSUE}/labels/agent(%3A|:)fix$").respond(json=[])
    router.post(f"{REPO_PATH}/issues/99/comments").respond(201, json={"id": 1})


async def trial(pem: str, directory: Path, n: int) -> tuple[float, float]:
    gate = Gate()
    with respx.mock(base_url=BASE_URL, assert_all_mocked=True, assert_all_called=False) as router:
        mock(router, gate)
        async with GitHubGateway(APP_ID, pem, base_url=BASE_URL, sleep=gate.sleep, now=gate.clock.now,
                                 monotonic=gate.clock.monotonic, write_limits=WRITE_LIMITS) as gateway, \
                harness(f"sqlite:///{directory / f'trial{n}.db'}", github=gateway) as world:
            for _ in range(WRITE_LIMITS[0][0]):  # the minute's whole budget, spent just now
                await gateway.request(INSTALLATION_ID, "POST", f"{REPO_PATH}/issues/99/comments", json={"body": "."})
            assert gate.sleeps == []
            start = time.perf_counter()
            delivering = asyncio.create_task(world.deliver("issues", labeled("agent:fix")))
            # Polling the database is what is measured: when another process's scheduler would see the runs.
            while len([r for r in await world.runs() if r.state == "queued"]) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            planned = time.perf_counter() - start
            held = gate.sleeps[0] if gate.sleeps else 0.0
            gate.opened.set()
            row = await delivering
            assert row.status == "done", row.last_error
    return planned * 1000, held


async def main(trials: int) -> None:
    pem = rsa_private_pem()
    planned: list[float] = []
    held: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(trials):
            p, h = await trial(pem, Path(tmp), n)
            planned.append(p)
            held.append(h)
    q = statistics.quantiles(planned, n=20) if len(planned) > 1 else planned * 19
    print(f"trials={trials} pacer saturated at {WRITE_LIMITS[0][0]} writes/{WRITE_LIMITS[0][1]:.0f} s")
    print(f"delivery -> runs queued (claimable): p50 {statistics.median(planned):.1f} ms, p95 {q[18]:.1f} ms")
    print(f"baseline (old order, planned after the 👀): + the 👀's pacer wait, p50 {statistics.median(held):.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    asyncio.run(main(parser.parse_args().trials))
