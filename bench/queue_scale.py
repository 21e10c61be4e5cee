"""The review queue at scale: the pure model's decision, a no-change reconcile and a head merge, at growing sizes.

For each queue size N (default 10, 100, 1,000 and 4,000 pull requests, each changing its own two files, CI green):
a queue world as the service tests use it (a migrated SQLite file, the shared `FakeGitHub` at the HTTP seam, the
real `QueueService`), the first reconcile (which creates every check), then

- model:      `plan` of that queue in CPU ms (the least of 3), first with nothing remembered (every check rendered)
              and then again (an unchanged entry's check is a lookup), and the overlap index alone;
- no change:  a reconcile with nothing changed: CPU ms (the least of 3), GitHub writes, and GitHub reads per PR;
- one PR event: a reconcile focused on one pull request with nothing changed (what its webhook causes: the others'
  facts come from the database, `bot.queue.facts`): CPU ms, GitHub reads and writes, which must not grow with size;
- head merge: the head merged by hand, then a reconcile: CPU ms and GitHub writes.

With `--fanout K` the N pull requests are N/K fan-outs of K (one trigger's runs each, ranked 1..K: the queue holds
N/K review slots, each leader followed by its alternatives); the head merge is then the first leader's, with its
siblings closed as superseded (what `bot.prs.siblings` does on that merge). Issue 16's figure, "the queue reconcile
for a repository with 50 open fan-outs of 3": `--sizes 150 --fanout 3`.

CPU time is the process's (`time.process_time`), so the figures do not count waiting; it includes the in-process
`FakeGitHub` answering the reconcile's reads (one listing of check runs, statuses and reviews per entry), so the fake
must answer each in constant time (it indexes check runs by commit) or its own cost would hide Kickoff's. The cost
per entry (µs per PR) is printed for the model, the no-change reconcile and the merge so growth is visible at a
glance: a linear cost keeps it flat. Usage:
`.venv/bin/python bench/queue_scale.py [--sizes 10,100,1000,4000] [--fanout 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.model import Queue  # noqa: E402
from bot.queue import model  # noqa: E402
from tests.queue.support import KEY, World, world  # noqa: E402

REPEATS = 3
"""The model and the no-change reconcile are measured this many times, keeping the least (a busy machine only ever
adds); the head merge happens once."""


def _cpu_ms(start: float) -> float:
    return (time.process_time() - start) * 1000


async def _measure(size: int, directory: Path, fanout: int = 1) -> dict[str, float]:
    async with world(f"sqlite+aiosqlite:///{directory / f'queue-{size}-{fanout}.db'}") as w:
        if fanout > 1:
            for first in range(1, size + 1, fanout):  # siblings change the same files, as attempts at one change do
                ranks = {number: number - first + 1 for number in range(first, min(first + fanout, size + 1))}
                await w.add_fanout(ranks, files=(f"src/a{first}.py", f"src/b{first}.py"))
        else:
            for number in range(1, size + 1):
                await w.add_pr(number, files=(f"src/a{number}.py", f"src/b{number}.py"))
        w.review(1)
        await w.reconcile()
        figures = await _model(w)
        nochange, figures["nochange_writes"] = [], 0
        for _ in range(REPEATS):
            before = len(w.gh.calls)
            start = time.process_time()
            await w.reconcile()
            nochange.append(_cpu_ms(start))
            figures["nochange_writes"] = max(figures["nochange_writes"], len(w.writes(before)))
            figures["nochange_reads"] = len(w.gh.calls) - before - len(w.writes(before))
        figures["nochange_ms"] = min(nochange)
        # One pull request's event with nothing changed: the others' facts come from the database.
        before = len(w.gh.calls)
        start = time.process_time()
        await w.service.reconcile(KEY, focus={size})
        figures["event_ms"] = _cpu_ms(start)
        figures["event_writes"] = len(w.writes(before))
        figures["event_reads"] = len(w.gh.calls) - before - figures["event_writes"]
        w.merge_by_hand(1)
        for sibling in range(2, min(fanout, size) + 1):
            w.close(sibling)  # superseded by the merge
        before = len(w.gh.calls)
        start = time.process_time()
        await w.reconcile()
        figures["merge_ms"] = _cpu_ms(start)
        figures["merge_writes"] = len(w.writes(before))
        return figures


async def _model(w: World) -> dict[str, float]:
    outcome = await w.reconcile()
    assert outcome.snapshot is not None
    snapshot, config, now = outcome.snapshot, Queue(), w.clock()
    cold, warm, overlaps = [], [], []
    for _ in range(REPEATS):
        model._check.cache_clear()
        start = time.process_time()
        model.plan(snapshot, config, now)
        cold.append(_cpu_ms(start))
        start = time.process_time()
        model.plan(snapshot, config, now)
        warm.append(_cpu_ms(start))
        ordered = model.review_order(snapshot, config, now)
        start = time.process_time()
        model._overlaps(ordered)
        overlaps.append(_cpu_ms(start))
    return {"model_cold_ms": min(cold), "model_warm_ms": min(warm), "overlaps_ms": min(overlaps)}


async def main(sizes: list[int], fanout: int = 1) -> None:
    if fanout > 1:
        print(f"fan-outs of {fanout}: N pull requests take N/{fanout} review slots")
    print(f"{'PRs':>6} | {'model cold':>10} {'warm':>8} {'overlaps':>8} | {'no change':>9} {'writes':>6} | "
          f"{'head merge':>10} {'writes':>6} | {'µs per PR: model':>16} {'no change':>9} {'merge':>6} | "
          f"{'reads per PR':>12} | {'one PR event':>12} {'reads':>5} {'writes':>6}")
    with tempfile.TemporaryDirectory(prefix="kickoff-queue-bench-") as name:
        for size in sizes:
            f = await _measure(size, Path(name), fanout)
            per = {column: 1000 * f[column] / size for column in ("model_cold_ms", "nochange_ms", "merge_ms")}
            print(f"{size:>6} | {f['model_cold_ms']:>8.1f}ms {f['model_warm_ms']:>6.1f}ms {f['overlaps_ms']:>6.2f}ms"
                  f" | {f['nochange_ms']:>7.0f}ms {f['nochange_writes']:>6.0f} | {f['merge_ms']:>8.0f}ms "
                  f"{f['merge_writes']:>6.0f} | {per['model_cold_ms']:>16.0f} {per['nochange_ms']:>9.0f} "
                  f"{per['merge_ms']:>6.0f} | {f['nochange_reads'] / size:>12.2f} | {f['event_ms']:>10.0f}ms "
                  f"{f['event_reads']:>5.0f} {f['event_writes']:>6.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,1000,4000", help="comma-separated queue sizes")
    parser.add_argument("--fanout", type=int, default=1, help="pull requests per fan-out (1: none)")
    args = parser.parse_args()
    asyncio.run(main([int(size) for size in args.sizes.split(",")], args.fanout))
