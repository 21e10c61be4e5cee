"""Ingress throughput: `kickoff serve` on its defaults (SQLite, dispatcher in process) against a bare HMAC endpoint.

Every configuration runs as real uvicorn processes, driven by wrk (Debian package `wrk`) with signed deliveries, each
with its own delivery id. The configurations take turns, round after round, each on a fresh database, so a machine
whose speed drifts (a shared VM) drifts for all of them alike; the table shows the median of the rounds and the ratio
of medians to the bare endpoint. Afterwards each run checks that every acknowledged delivery is in the inbox and, where
a dispatcher runs, waits until every delivery is handled and reports how long the backlog took to drain.

A second phase measures acknowledgement latency below saturation (a few connections instead of many).

Usage: `.venv/bin/python bench/ingress.py [--seconds 8] [--connections 32] [--rounds 3] [--warmup 10]
[--latency-connections 2]`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
PAYLOAD = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "issues.opened.1.json"
DRAIN_LIMIT_SECONDS = 300.0


@dataclass
class Config:
    name: str
    flags: list[str] | None  # None: the bare endpoint
    worker: bool = False  # a separate `kickoff worker` process
    results: list[dict[str, float]] = field(default_factory=list)

    @property
    def dispatches(self) -> bool:
        return self.flags is not None and ("--no-worker" not in self.flags or self.worker)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def start(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def drive(port: int, seconds: int, connections: int, prefix: str, work: Path) -> dict[str, float]:
    body_file = work / "body.json"
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_PREFIX": prefix,
           "BENCH_SIGNATURE": "sha256=" + hmac.new(SECRET.encode(), body_file.read_bytes(), hashlib.sha256).hexdigest()}
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(ROOT / "bench" / "wrk_deliveries.lua"),
         f"http://127.0.0.1:{port}"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def inbox_counts(db: Path, prefix: str) -> tuple[int, int]:
    """(stored, handled) deliveries whose id starts with `prefix`."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(status = 'done'), 0) FROM deliveries WHERE id LIKE ?", (f"{prefix}-%",)
        ).fetchone()
    return int(row[0]), int(row[1])


def run(config: Config, tag: str, args: argparse.Namespace, work: Path, base_env: dict[str, str],
        connections: int) -> dict[str, float]:
    port = free_port()
    if config.flags is None:
        procs = [start([sys.executable, "-m", "uvicorn", "bench.bare_endpoint:app", "--port", str(port),
                        "--no-access-log", "--log-level", "warning"], base_env, ROOT)]
        ready = f"http://127.0.0.1:{port}/docs"
    else:
        db = work / f"{tag}.db"
        env = {**base_env, "DATABASE_URL": f"sqlite:///{db}"}
        procs = [start([sys.executable, "-m", "bot", "serve", "--port", str(port), *config.flags], env, work)]
        ready = f"http://127.0.0.1:{port}/healthz"
    try:
        wait_ready(ready, procs[0])
        if config.worker:
            procs.append(start([sys.executable, "-m", "bot", "worker"], env, work))
        drive(port, args.warmup, connections, f"warm-{tag}", work)
        if config.dispatches:
            drain_until_handled(db, f"warm-{tag}")
        result = drive(port, args.seconds, connections, tag, work)
        if config.flags is not None:
            stored, _ = inbox_counts(db, tag)
            result["lost"] = max(0, result["requests"] - result["non_2xx"] - stored)
            if config.dispatches:
                result["drain_s"] = drain_until_handled(db, tag)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        if config.flags is not None:
            for leftover in work.glob(f"{tag}.db*"):
                leftover.unlink()
        # Write back what the run left dirty in the page cache now, not during the next configuration's run.
        os.sync()
        time.sleep(1)
    return result


def drain_until_handled(db: Path, prefix: str) -> float:
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_LIMIT_SECONDS:
        stored, handled = inbox_counts(db, prefix)
        if handled >= stored:
            return time.monotonic() - began
        time.sleep(0.1)
    raise SystemExit(f"the dispatcher did not handle {prefix}'s deliveries within {DRAIN_LIMIT_SECONDS:.0f} s")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10,
                        help="seconds of load before each measured run (a new SQLite file needs ~20 s to settle)")
    parser.add_argument("--latency-connections", type=int, default=2)
    parser.add_argument("--skip-split", action="store_true", help="leave out --no-worker + a worker process")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    configs = [
        Config("bare FastAPI, HMAC only", None),
        Config("kickoff serve (defaults)", []),
        Config("kickoff serve --no-worker", ["--no-worker"]),
    ]
    if not args.skip_split:
        configs.append(Config("  + a kickoff worker process", ["--no-worker"], worker=True))
    latency = [Config("bare FastAPI, HMAC only", None), Config("kickoff serve (defaults)", [])]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "body.json").write_bytes(PAYLOAD.read_bytes())
        base_env = {"WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
        for round_ in range(args.rounds):
            for index, config in enumerate(configs):
                result = run(config, f"r{round_}c{index}", args, work, base_env, args.connections)
                config.results.append(result)
                print(f"round {round_ + 1}: {config.name:<30} {result['rate']:>8.0f}/s", file=sys.stderr)
        for round_ in range(args.rounds):
            for index, config in enumerate(latency):
                config.results.append(run(config, f"l{round_}c{index}", args, work, base_env,
                                          args.latency_connections))

    def table(title: str, rows: list[Config]) -> None:
        base = median([r["rate"] for r in rows[0].results])
        print(title)
        print(f"{'endpoint':<32} {'deliveries/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'drained in':>11}"
              f" {'lost':>5}")
        for config in rows:
            rs = config.results
            rate = median([r["rate"] for r in rs])
            drain = f"{median([r['drain_s'] for r in rs]):.1f} s" if config.dispatches else "-"
            lost = "-" if config.flags is None else str(int(sum(r["lost"] for r in rs)))
            print(f"{config.name:<32} {rate:>12.0f} {median([r['p50_us'] for r in rs]) / 1000:>8.2f} "
                  f"{median([r['p99_us'] for r in rs]) / 1000:>8.2f} {rate / base:>7.2f}x {drain:>11} {lost:>5}")
            print(f"{'':<32} rounds: " + ", ".join(f"{r['rate']:.0f}" for r in rs))

    table(f"Saturated: {args.connections} connections, {args.seconds} s per run, median of {args.rounds} rounds",
          configs)
    print()
    table(f"Below saturation: {args.latency_connections} connections", latency)
    print()
    print("target: >= 0.75x the bare endpoint with every delivery committed before its 202 (lost = 0), p99 < 10 ms")
    print("'drained in': after the flood, until the dispatcher had handled every delivery")


if __name__ == "__main__":
    main()
