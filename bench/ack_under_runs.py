"""Webhook acks while 32 local runs start and run: ack latency p50/p99/max, with and without the runs, in one run.

A real `kickoff serve` (uvicorn, SQLite, the worker's loops in process, the local runner with bubblewrap) in a session
of its own, as a service runs; GitHub is the project's simulator (bot.sandbox) in this process, the App installed on
a repository whose `.github/kickoff.yml` fans `fix` out to 32 scripted agents. A probe process of its own (its own
session too) sends signed `issues.opened` deliveries at a fixed rate (real HMAC over the bytes of a recorded payload,
each with its own delivery id) over a few keep-alive connections, and times each request to its 202.

Phases, each `--seconds` long, taking turns round after round so a machine whose speed drifts drifts for all alike:

- `idle`: deliveries only;
- `runs`: an issue is labeled `agent:fix` as the phase begins: Kickoff plans 32 runs, claims them, and starts 32
  runners (the real runner program: clone, then the agent in bubblewrap, then push; then Kickoff opens the pull
  requests). Each agent prints and writes files and burns CPU in short bursts for about 8 s, so the runs demand far
  more than the 2 cores. After the phase the bench waits until every run is final and the server is quiet.

Each phase runs against two servers: `lowered`, Kickoff as it ships (every runner's session at nice 19, autogroup
included: bot.runner_program.priority), and `unlowered`, the same with the lowering switched off (the server and its
runner programs are started through a wrapper that replaces it with a no-op: a switch of this bench only).

Prints, per server and phase: deliveries, ack p50 / p99 / max (ms), stalls (acks over 100 ms), and p99's ratio to the
idle phase of the same server. Usage: `.venv/bin/python bench/ack_under_runs.py [--seconds 10] [--rate 200]
[--rounds 2] [--runs 32]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAYLOAD = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "issues.opened.1.json"
CONNECTIONS = 8
STALL_MS = 100.0
SETTLE_LIMIT_SECONDS = 60.0
# The scripted agent (no braces: the command adapter reads them as placeholders): about 8 s of work, CPU bursts of
# ~25 ms between short sleeps, printing and writing files.
AGENT = """
import hashlib, json, pathlib, sys, time
repo = pathlib.Path(sys.argv[1])
out = repo / "bench"
out.mkdir(exist_ok=True)
data = b"x" * 65536
for step in range(40):
    end = time.process_time() + 0.025
    while time.process_time() < end:
        data = hashlib.sha256(data).digest() * 2048
    (out / ("step-%d.txt" % step)).write_text(hashlib.sha256(data).hexdigest() + "\\n")
    print("step %d: wrote bench/step-%d.txt" % (step, step), flush=True)
    time.sleep(0.16)
usage = dict(input_tokens=1, output_tokens=1, cost_usd=0.0, turns=1)
print(json.dumps(dict(summary="bench work", usage=usage)))
"""
# `unlowered`: the same Kickoff with bot.runner_program.priority's lowering replaced by a no-op, in the server and in
# every runner program it starts.
UNLOWER = (
    "import bot.runner_program.priority as p; "
    "p.lower = lambda pid=0: p.Lowered(True, False); "
    "p.lower_runner = lambda pid=0, **_: p.Lowered(True, False); "
    "from bot.cli import main; main()"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the probe (its own process): signed deliveries at a fixed rate, each timed to its response --------------------

async def _probe(port: int, seconds: float, rate: float, secret: str, out: Path) -> None:
    body = PAYLOAD.read_bytes()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    samples: list[tuple[float, float, int]] = []

    async def one(at: float) -> None:
        reader, writer = await idle.get()
        head = (
            f"POST /api/github/webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: issues\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: {signature}\r\n"
            f"User-Agent: GitHub-Hookshot/bench\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent = time.perf_counter()
        writer.write(head + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        samples.append((at, (time.perf_counter() - sent) * 1000, int(status_line.split()[1])))
        idle.put_nowait((reader, writer))

    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for index in range(int(seconds * rate)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(time.perf_counter() - start)))
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    await asyncio.to_thread(out.write_text, json.dumps(samples))


# ---- the bench ----------------------------------------------------------------------------------------------------

def kickoff_yml(runs: int) -> str:
    names = [f"bench{i}" for i in range(runs)]
    agents = {name: {"adapter": "command", "command": [sys.executable, "-c", AGENT, "{workdir}"]} for name in names}
    return json.dumps({
        "agents": agents,
        "tasks": {"fix": {"agents": names, "attempts": 1}},
        "limits": {"max_parallel_runs": runs, "max_open_prs": 1000, "run_timeout_minutes": 5},
    }, indent=2) + "\n"


class Server:
    """One simulated GitHub (in this process) and one `kickoff serve` (a process in its own session)."""

    def __init__(self, name: str, root: Path, runs: int, lowered: bool, stall_log_ms: float | None = None) -> None:
        self.stall_log_ms = stall_log_ms
        self.name, self.root, self.runs, self.lowered = name, root, runs, lowered
        self.port = free_port()
        self.issues = 0
        self.stack = contextlib.AsyncExitStack()
        self.proc: subprocess.Popen[bytes] | None = None
        self.secret = ""
        self.sandbox: Any = None

    async def start(self) -> None:
        from bot.demo import sample
        from bot.demo.harness import HARNESS_SETTINGS, KICKOFF_APP_NAME, WEBHOOK_PATH
        from bot.sandbox import Sandbox, SandboxServer

        self.root.mkdir(parents=True)
        (self.root / "workspaces").mkdir()
        self.sandbox = Sandbox(self.root / "github", retry_delays=(0.2, 0.5, 1.0, 2.0), fidelity=False, strict=False)
        self.stack.callback(self.sandbox.close)
        github_url = await self.stack.enter_async_context(SandboxServer(self.sandbox))
        kickoff_url = f"http://127.0.0.1:{self.port}"
        creds = await self.sandbox.aio.create_app(KICKOFF_APP_NAME, webhook_url=kickoff_url + WEBHOOK_PATH)
        self.secret = creds.webhook_secret
        files = {**sample.files(), ".github/kickoff.yml": kickoff_yml(self.runs)}
        await self.sandbox.aio.create_repo(sample.OWNER, sample.REPO, files)
        await self.sandbox.aio.set_permission(sample.OWNER, sample.REPO, sample.MAINTAINER, "maintain")
        await self.sandbox.aio.install(creds.app_id, sample.OWNER, [sample.REPO])
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KICKOFF_")},
            **HARNESS_SETTINGS,
            "APP_ID": str(creds.app_id),
            "PRIVATE_KEY": creds.private_key_pem,
            "WEBHOOK_SECRET": creds.webhook_secret,
            "GITHUB_API_URL": github_url,
            "DATABASE_URL": f"sqlite:///{self.root / 'kickoff.db'}",
            "PUBLIC_URL": kickoff_url,
            "KICKOFF_RUNNER": "local",
            "KICKOFF_MAX_PARALLEL_RUNS": str(self.runs),
            "KICKOFF_PLUGINS": "",
            # The runners clone from and push to the simulator's repositories on disk: its git over HTTP, in this
            # one Python process beside its API, cannot serve 32 clones at once on 2 cores.
            "KICKOFF_CLONE_URL": f"file://{self.root / 'github' / 'repos'}/{{repo}}.git",
            "KICKOFF_WORKSPACE_DIR": str(self.root / "workspaces"),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        if self.stall_log_ms:  # the server logs its loop's stack at every stall (bot.stalls), in kickoff.log
            env["KICKOFF_STALL_LOG_MS"] = str(self.stall_log_ms)
        if self.lowered:
            argv = [sys.executable, "-m", "bot", "serve", "--port", str(self.port)]
        else:
            argv = [sys.executable, "-c", UNLOWER, "serve", "--port", str(self.port)]
            env["KICKOFF_LOCAL_RUNNER_COMMAND"] = json.dumps([sys.executable, "-c", UNLOWER, "run-agent"])
        self.proc = await asyncio.to_thread(self._spawn, argv, env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name}: kickoff serve exited; see {self.root / 'kickoff.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name}: kickoff serve did not come up") from None
                await asyncio.sleep(0.1)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.root / "kickoff.log").open("wb") as log:
            return subprocess.Popen(argv, env=env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # a service's session, as systemd would give it

    async def fan_out(self) -> None:
        from bot.demo import sample

        self.issues += 1
        await self.sandbox.aio.open_issue(sample.OWNER, sample.REPO, f"bench {self.issues}", "Do the bench work.",
                                          sender=sample.MAINTAINER, labels=["agent:fix"])

    def run_states(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(f"file:{self.root / 'kickoff.db'}?mode=ro", uri=True)) as db:
            return [state for (state,) in db.execute("SELECT state FROM runs")]

    async def settle(self) -> dict[str, int]:
        """Wait until every run is final and the runner workspaces are gone; the runs by state."""
        from bot.store.lifecycle import is_final

        deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
        while True:
            states = self.run_states()
            busy = [s for s in states if not is_final(s)]
            left = list((self.root / "workspaces").iterdir())
            if len(states) >= self.issues * self.runs and not busy and not left:
                break
            if time.monotonic() > deadline:
                print(f"  {self.name}: runs not settled after {SETTLE_LIMIT_SECONDS:.0f} s: {len(busy)} busy")
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # the pull requests, checks and comments that follow the last run
        return {state: states.count(state) for state in sorted(set(states))}

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        await self.stack.aclose()


async def measure(server: Server, phase: str, seconds: float, rate: float, work: Path) -> list[float]:
    out = work / f"{server.name}-{phase}-{uuid.uuid4().hex[:6]}.json"
    probe = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe", str(server.port), str(seconds), str(rate), server.secret, str(out),
        start_new_session=True)
    await asyncio.sleep(0.3)  # its connections are open: the phase starts now
    if phase == "runs":
        await server.fan_out()
    if await probe.wait() != 0:
        raise SystemExit(f"{server.name}: the probe failed")
    samples = json.loads(out.read_text())
    bad = [status for _, _, status in samples if status != 202]
    if bad:
        raise SystemExit(f"{server.name}: {len(bad)} deliveries not acknowledged with 202 (e.g. {bad[0]})")
    return [latency for _, latency, _ in samples]


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
        "stalls": sum(1 for value in ordered if value > STALL_MS),
    }


async def bench(args: argparse.Namespace) -> None:
    from bot.runner_program.priority import autogroup_enabled
    from bot.runner_program.sandbox import probe_here

    if not probe_here().ok:
        raise SystemExit("bubblewrap does not work here (scripts/bootstrap installs it)")
    print(f"autogroup scheduling: {'on' if autogroup_enabled() else 'off'}; {os.cpu_count()} CPUs; "
          f"{args.rate:g} deliveries/s for {args.seconds:g} s per phase; {args.runs} runs per fan-out")
    with contextlib.ExitStack() as cleanup:
        work = Path(tempfile.mkdtemp(prefix="kickoff-bench-acks-"))
        if args.keep:
            print(f"keeping {work}")
        else:
            cleanup.callback(shutil.rmtree, work, True)
        servers = [Server("lowered", work / "lowered", args.runs, True, args.stall_log_ms),
                   Server("unlowered", work / "unlowered", args.runs, False, args.stall_log_ms)]
        results: dict[tuple[str, str], list[float]] = {}
        try:
            for server in servers:
                await server.start()
            for round_ in range(args.rounds):
                for server in servers if round_ % 2 == 0 else reversed(servers):
                    for phase in ("idle", "runs"):
                        latencies = await measure(server, phase, args.seconds, args.rate, work)
                        results.setdefault((server.name, phase), []).extend(latencies)
                        figures = summary(latencies)
                        line = (f"  round {round_ + 1} {server.name:9} {phase:4}: p50 {figures['p50']:6.1f} "
                                f"p99 {figures['p99']:6.1f} max {figures['max']:7.1f} ms, {figures['stalls']} stalls")
                        if phase == "runs":
                            line += f"; runs {await server.settle()}"
                        print(line, flush=True)
        finally:
            for server in servers:
                await server.stop()
    print(f"\n{'server':9} {'phase':5} {'acks':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} "
          f"{'>100ms':>7} {'p99/idle':>9}")
    for server in servers:
        idle = summary(results[(server.name, "idle")])
        for phase in ("idle", "runs"):
            figures = summary(results[(server.name, phase)])
            print(f"{server.name:9} {phase:5} {figures['n']:6.0f} {figures['p50']:7.1f} {figures['p99']:7.1f} "
                  f"{figures['max']:8.1f} {figures['stalls']:7.0f} {figures['p99'] / idle['p99']:8.1f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        port, seconds, rate, secret, out = sys.argv[2:7]
        asyncio.run(_probe(int(port), float(seconds), float(rate), secret, Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories (logs, databases)")
    parser.add_argument("--stall-log-ms", type=float, default=None,
                        help="the servers log their event loop's stack at stalls over this (with --keep, to read)")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
