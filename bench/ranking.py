"""The fan-out ranking for a repository with 50 open fan-outs of 3 (issue 16), in CPU ms.

In the runs tests' world (a migrated SQLite file, the shared `FakeGitHub`, the real stores): `--fanouts` triggers of
three runs each, every run succeeded with a scripted report (one fails verify, one has a large diff, one a small
diff and a test) and its pull request opened by the real opener. Then, each the least of 3 (CPU only ever grows on
a busy machine):

- model:   `rank_on_evidence` of every fan-out from its evidence in memory (the pure part);
- render:  the ranking section of every tracking comment (`render_ranking`);
- publish: `Ranker.settle` of every fan-out (read its runs and pull requests, rank, write the trigger and three
           pull request rows), on fresh copies of the database state (the first publish is once per fan-out);
- re-rank: `Ranker.rerank` of every fan-out with nothing changed (what CI on an unrelated check costs): reads only,
           nothing written.

CPU time is the process's (`time.process_time`), so waiting on SQLite's file is not counted; it includes
SQLAlchemy's and aiosqlite's work in this process. Usage: `.venv/bin/python bench/ranking.py [--fanouts 50]`.
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

from sqlalchemy import update  # noqa: E402

from bot.ranking import Ranking, rank_on_evidence  # noqa: E402
from bot.runs.ranking import Ranker  # noqa: E402
from bot.runs.tracking import render_ranking  # noqa: E402
from bot.store.models import PullRequest, Trigger  # noqa: E402
from tests.prs.support import deliverer, succeed  # noqa: E402
from tests.runs.support import OWNER, REPO, World, world  # noqa: E402
from tests.runs.test_ranking import fanout_config, scripted  # noqa: E402

REPEATS = 3


def _cpu_ms(start: float) -> float:
    return (time.process_time() - start) * 1000


async def _build(w: World, fanouts: int) -> list[int]:
    triggers = []
    for issue in range(1, fanouts + 1):
        trigger, runs = await w.add_trigger(["a", "b", "c"], issue=issue)
        for run in runs:
            result = await succeed(w, run, scripted(run))
            assert result.branch is not None
            assert result.head_sha is not None
            w.github.branch_shas[(OWNER, REPO, result.branch)] = result.head_sha
        triggers.append(trigger.id)
    opener = deliverer(w)
    while await opener.process():
        pass
    return triggers


async def _unpublish(w: World) -> None:
    async with w.store.sessions.begin() as session:
        await session.execute(update(Trigger).values(ranking=None, ranked_at=None))
        await session.execute(update(PullRequest).values(rank=None, rank_reason=None))


async def measure(fanouts: int, directory: Path) -> dict[str, float]:
    async with world(f"sqlite:///{directory / 'ranking.db'}", directory) as w:
        w.default_config = fanout_config()
        triggers = await _build(w, fanouts)
        ranker = Ranker(w.services, w.runs, config_for=w.config_for)
        figures: dict[str, float] = {}
        publish = []
        for _ in range(REPEATS):
            await _unpublish(w)
            loaded = [(await w.runs.trigger(t), await w.runs.runs_of_trigger(t)) for t in triggers]
            start = time.process_time()
            published = 0
            for trigger, runs in loaded:
                assert trigger is not None
                published += await ranker.settle(trigger, runs) is not None
            publish.append(_cpu_ms(start))
            assert published == fanouts, published
        figures["publish"] = min(publish)
        evidence = [await ranker.evidence(t, r) for t, r in
                    [(await w.runs.trigger(t), await w.runs.runs_of_trigger(t)) for t in triggers] if t is not None]
        model, render = [], []
        for _ in range(REPEATS):
            start = time.process_time()
            rankings = [rank_on_evidence(attempts) for attempts in evidence]
            model.append(_cpu_ms(start))
            start = time.process_time()
            for ranking in rankings:
                render_ranking(ranking)
            render.append(_cpu_ms(start))
        figures["model"], figures["render"] = min(model), min(render)
        stored = [Ranking.from_json((await w.runs.trigger(t) or Trigger()).ranking) for t in triggers]
        assert all(r is not None and [row.agent for row in r.rows] == ["c", "b", "a"] for r in stored)
        rerank = []
        for _ in range(REPEATS):
            start = time.process_time()
            changed = [await ranker.rerank(t) for t in triggers]
            rerank.append(_cpu_ms(start))
            assert not any(changed)
        figures["rerank"] = min(rerank)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fanouts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        figures = asyncio.run(measure(args.fanouts, Path(directory)))
    n = args.fanouts
    print(f"{n} fan-outs of 3 (CPU ms, least of {REPEATS}; µs per fan-out in brackets)")
    for name in ("model", "render", "publish", "rerank"):
        print(f"  {name:8} {figures[name]:9.1f} ms  ({figures[name] * 1000 / n:,.0f} µs)")


if __name__ == "__main__":
    main()
