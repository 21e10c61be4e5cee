"""How long the `kickoff` command line takes to start and answer: `kickoff status` and the light commands.

Each command runs as a real subprocess (`python -m bot ...`, the same code as the `kickoff` entry point) against a
migrated SQLite file made in a temporary directory, several rounds, interleaved: with `--baseline DIR` (a checkout,
or `git archive` of one, holding `bot/`) every round runs the baseline's command right before this tree's, so both
see the same load on a shared machine. Prints, per command, the wall time (min and median over the rounds) and the
child's CPU time (user + system, median).

Usage: `.venv/bin/python bench/cli_startup.py [--rounds 7] [--baseline DIR] [--commands status,--help,version]`.
A baseline for the last commit: `mkdir -p /tmp/base && git archive HEAD bot | tar -x -C /tmp/base`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "status": ["status"],
    "--help": ["--help"],
    "version": ["version"],
    "status --help": ["status", "--help"],
    "config schema": ["config", "schema"],
}


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # In the temporary directory: `python -m` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-m", "bot", *argv], env=env, cwd=env["KICKOFF_BENCH_DIR"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="a directory holding the baseline's bot/ package")
    parser.add_argument("--commands", default="status,--help,version", help=f"of {', '.join(COMMANDS)}")
    args = parser.parse_args()
    commands = [name.strip() for name in args.commands.split(",")]
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="kickoff-cli-bench-") as name:
        env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{Path(name) / 'kickoff.db'}",
               "KICKOFF_BENCH_DIR": name}
        envs = {tree: {**env, "PYTHONPATH": str(path)} for tree, path in trees.items()}
        _run(["db", "upgrade"], envs["this"])
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for command in commands:
            for tree in trees:  # one warm-up each (the page cache, .pyc files)
                _run(COMMANDS[command], envs[tree])
        for _ in range(args.rounds):
            for command in commands:
                for tree in reversed(list(trees)):  # the baseline first, then this tree
                    results.setdefault((command, tree), []).append(_run(COMMANDS[command], envs[tree]))
    print(f"{'command':<14} {'tree':<9} | {'wall min':>8} {'median':>8} | {'CPU median':>10}")
    for (command, tree), runs in results.items():
        walls = [wall for wall, _ in runs]
        cpus = [cpu for _, cpu in runs]
        print(f"{command:<14} {tree:<9} | {min(walls):>7.2f}s {statistics.median(walls):>7.2f}s | "
              f"{statistics.median(cpus):>9.2f}s")


if __name__ == "__main__":
    main()
