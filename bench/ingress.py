"""Ingress throughput: `kickoff serve` on its defaults (SQLite, dispatcher on) against a bare HMAC-only endpoint.

Both run as real uvicorn processes, driven by wrk (Debian package `wrk`) with signed deliveries, each with its own
delivery id. Prints deliveries/s, p50 and p99 for both and the ratio, then checks that every acknowledged delivery
is in the inbox. Usage: `.venv/bin/python bench/ingress.py [--seconds 10] [--connections 32]`.
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
PAYLOAD = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "issues.opened.1.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
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
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(ROOT / "bench" / "wrk_deliveries.lua"),
         f"http://127.0.0.1:{port}"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "body.json").write_bytes(PAYLOAD.read_bytes())
        base_env = {"WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}

        bare_port = free_port()
        bare = start([sys.executable, "-m", "uvicorn", "bench.bare_endpoint:app", "--port", str(bare_port),
                      "--no-access-log", "--log-level", "warning"], base_env, ROOT)
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/docs", bare)
            drive(bare_port, 2, args.connections, "warm-bare", work)
            baseline = drive(bare_port, args.seconds, args.connections, "bare", work)
        finally:
            bare.terminate()
            bare.wait()

        rows: list[tuple[str, dict[str, float]]] = [("bare FastAPI, HMAC only", baseline)]
        configs = [
            ("kickoff serve (SQLite, worker in)", "kickoff", [], False),
            ("kickoff serve --no-worker", "noworker", ["--no-worker"], False),
            ("  ... + kickoff worker process", "split", ["--no-worker"], True),
        ]
        stored_ok = True
        for name, prefix, flags, separate_worker in configs:
            port = free_port()
            env = {**base_env, "DATABASE_URL": f"sqlite:///{work}/{prefix}.db"}
            procs = [start([sys.executable, "-m", "bot", "serve", "--port", str(port), *flags], env, work)]
            try:
                wait_ready(f"http://127.0.0.1:{port}/healthz", procs[0])
                if separate_worker:
                    procs.append(start([sys.executable, "-m", "bot", "worker"], env, work))
                drive(port, 2, args.connections, f"warm-{prefix}", work)
                result = drive(port, args.seconds, args.connections, prefix, work)
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait()
            with sqlite3.connect(work / f"{prefix}.db") as conn:
                (stored,) = conn.execute("SELECT count(*) FROM deliveries WHERE id LIKE ?", (f"{prefix}-%",)).fetchone()
            acked = result["requests"] - result["non_2xx"]
            stored_ok = stored_ok and stored >= acked
            rows.append((name, result))

    print(f"{'endpoint':<36} {'deliveries/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs bare':>8}")
    for name, r in rows:
        print(f"{name:<36} {r['rate']:>12.0f} {r['p50_us'] / 1000:>8.2f} {r['p99_us'] / 1000:>8.2f} "
              f"{int(r['non_2xx']):>8} {r['rate'] / baseline['rate']:>7.2f}x")
    print("target: >= 0.75x the bare endpoint, p99 < 10 ms")
    print(f"every acknowledged delivery was in the inbox: {stored_ok}")


if __name__ == "__main__":
    main()
