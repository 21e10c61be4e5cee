"""Publishing a fan-out's ranking (bot.ranking): once when its runs have ended, again when CI changes the evidence.

A fan-out (two or more `new` runs of one trigger) is *due* once every run has ended and every succeeded run's
pull request is out (its delivery done), or once its deadline has passed: a run timeout (`limits.
run_timeout_minutes`) after its first run ended, so one stuck sibling never holds the others' ranking back (a run
still going then ranks as one without a pull request). The tracker (bot.runs.tracking) asks at every edit of the
tracking comment; the first to publish wins (`ranked_at IS NULL` in the update), so the ranking is published once:
`triggers.ranking` and `ranked_at`, and `pull_requests.rank` and `rank_reason` of each attempt's pull request. The
table is in the tracking comment, which the tracker then edits in place.

CI on a ranked pull request's head (`check_run`, `check_suite`, `status` webhooks: bot.handlers.queue) re-ranks
its fan-out (`rerank`); the ranking is written again only when a row or the order changed (compare-and-set on
the stored JSON, so two workers re-ranking at once write once). A judge's ranking keeps its order on a re-rank;
only the rows' CI is brought up to date.

A task that names a judge (`tasks.<name>.judge`) is not ranked when it is due: a run of kind `judge` is queued
for the trigger instead (once: agent = the judge, attempt `JUDGE_ATTEMPT` = 0, which no attempt has), and the
fan-out is ranked when that run ends. The judge run reads the issue and every attempt's diff (bot.runs.
spec_builder, bot.runner_program), pushes nothing, opens no pull request and answers in its result's `report`:
a valid answer is the ranking (source `judge`); a judge run that failed, timed out, was cancelled or answered
nonsense leaves the evidence ranking, with a note saying why. A judge run still not ended `JUDGE_PATIENCE`
deadlines after it was queued (no runner was free, or it was lost) is cancelled and the evidence ranking stands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Final

from pydantic import ValidationError
from sqlalchemy import select, update

from bot import messages
from bot.config import RepoConfig
from bot.ranking import CI, Evidence, Ranking, Verify, rank_on_evidence, rank_with_judge, refused_flag
from bot.runspec import RunResult
from bot.services import Services
from bot.store.models import JUDGE_KIND, PullRequest, Run, RunState, Trigger
from bot.store.pulls import DELIVERED
from bot.store.runs import RunStore

log = logging.getLogger(__name__)

CiLookup = Callable[[str, Sequence[str]], Awaitable[Mapping[str, CI]]]
"""The CI verdict of each head (repository, shas → sha → verdict), from the queue's commit facts."""
ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
JudgeAnswer = tuple[str | None, str | None]
"""A judge's answer and why there is none (failed, timed out); see `Judge`."""
Judge = Callable[[str, Trigger, Sequence[Evidence]], Awaitable[JudgeAnswer]]
"""Asks the judge agent (by name) to rank a fan-out's attempts: (its answer, None) or (None, why it failed)."""
DEFAULT_DEADLINE: Final = timedelta(minutes=30)
JUDGE_PATIENCE: Final = 2
"""A judge run not ended this many deadlines after it was queued (time for a runner, then its own timeout) is
stopped, and the fan-out ranked on evidence."""
MIN_DEADLINE: Final = timedelta(minutes=1)
"""The shortest deadline a config can set (`limits.run_timeout_minutes` ≥ 1): sooner, the config is not read."""


def fan_out(runs: Sequence[Run]) -> list[Run]:
    """A trigger's attempts: its `new` runs, when there are two or more (one run is no fan-out)."""
    attempts = [run for run in runs if run.kind == "new"]
    return attempts if len(attempts) >= 2 else []


def judge_run_of(runs: Sequence[Run]) -> Run | None:
    """A trigger's judge run, if one was queued."""
    return next((run for run in runs if run.kind == JUDGE_KIND), None)


JUDGE_ENDED: Final = {
    RunState.TIMED_OUT: "its run timed out",
    RunState.CANCELLED: "its run was cancelled",
    RunState.NO_CHANGES: "its run gave no answer",
}


def judge_answer(run: Run) -> JudgeAnswer:
    """What an ended judge run answered: (its answer, None), or (None, why there is none)."""
    if run.state == RunState.SUCCEEDED:
        result = result_of(run)
        if result is None or not (result.report or "").strip():
            return None, "its run gave no answer"
        return result.report, None
    if run.state == RunState.FAILED:
        return None, f"its run failed ({run.reason})" if run.reason else "its run failed"
    return None, JUDGE_ENDED.get(run.state, f"its run ended {run.state}")


def result_of(run: Run) -> RunResult | None:
    if not run.result:
        return None
    try:
        return RunResult.model_validate_json(run.result)
    except ValidationError:
        return None


def evidence_of(run: Run, pull: PullRequest | None, ci: CI = "none") -> Evidence:
    """One attempt's evidence: its run's report, its pull request (open or not) and the CI on that head."""
    result = result_of(run)
    verify: Verify = "none"
    added = removed = None
    files: tuple[str, ...] = ()
    cost = run.cost_usd
    duration = None
    if result is not None:
        if result.verify is not None:
            verify = "passed" if result.verify.passed else "failed"
        added, removed = result.lines_added, result.lines_removed
        files = result.files_changed
        cost = result.usage.cost_usd if result.usage.cost_usd is not None else cost
        duration = result.duration_seconds or None
    if duration is None and run.started_at is not None and run.finished_at is not None:
        duration = max(0.0, (run.finished_at - run.started_at).total_seconds())
    number = pull.number if pull is not None and pull.state != "opening" else None
    return Evidence(run_id=run.id, agent=run.agent, attempt=run.attempt, state=run.state, pr=number,
                    verify=verify, ci=ci if number is not None else "none", added=added, removed=removed,
                    files=files, cost_usd=cost, duration_s=duration, refused=refused_flag(run.reason),
                    incomplete=result is not None and result.incomplete)


class Ranker:
    """Ranks fan-outs and stores the ranking. `ci` reads the CI of heads (None: unknown, "none" for every head);
    `judge` asks a task's judge agent directly (tests); None: a judge named in the config gets its own run."""

    def __init__(self, services: Services, runs: RunStore, *, config_for: ConfigLookup | None = None,
                 ci: CiLookup | None = None, judge: Judge | None = None) -> None:
        self.services = services
        self.runs = runs
        self.config_for = config_for
        self.ci = ci
        self.judge = judge

    async def _config(self, trigger: Trigger) -> RepoConfig | None:
        if self.config_for is None:
            return None
        try:
            return await self.config_for(trigger.installation_id, trigger.repository)
        except Exception as exc:  # a config that cannot be read: the defaults (no judge, the default deadline)
            log.info("ranking trigger %s without its repository's config: %s", trigger.id, exc)
            return None

    def due(self, runs: Sequence[Run], deadline: timedelta | None) -> bool | None:
        """Whether a fan-out's attempts are ready to rank: all ended and delivered, or the deadline passed. None:
        it depends on the deadline (`deadline` None: not known yet)."""
        attempts = fan_out(runs)
        if not attempts:
            return False
        ended = [run for run in attempts if run.state in RunState.FINAL]
        if len(ended) == len(attempts) and all(
            run.state != RunState.SUCCEEDED or run.progress == DELIVERED for run in attempts
        ):
            return True
        first = min((run.finished_at for run in ended if run.finished_at is not None), default=None)
        waited = self.services.clock() - first if first is not None else None
        if waited is None or waited < MIN_DEADLINE:
            return False
        return None if deadline is None else waited >= deadline

    def waiting(self, runs: Sequence[Run]) -> bool:
        """Whether an unranked fan-out has an attempt that ended and one that has not, or a judge run still going:
        a deadline may pass."""
        judged = judge_run_of(runs)
        if judged is not None and judged.state not in RunState.FINAL:
            return True
        attempts = fan_out(runs)
        return any(run.state in RunState.FINAL for run in attempts) and not all(
            run.state in RunState.FINAL and (run.state != RunState.SUCCEEDED or run.progress == DELIVERED)
            for run in attempts
        )

    async def settle(self, trigger: Trigger, runs: Sequence[Run]) -> Ranking | None:
        """Publish the fan-out's ranking if it is due and not published yet; the ranking published, or None."""
        if trigger.ranked_at is not None:
            return None
        due = self.due(runs, None)  # most passes end here, without reading the config
        if due is False:
            return None
        config = await self._config(trigger)
        deadline = (timedelta(minutes=config.limits.run_timeout_minutes) if config is not None
                    else DEFAULT_DEADLINE)
        if due is None and not self.due(runs, deadline):
            return None
        task = config.tasks.get(trigger.task) if config is not None else None
        judge_name = task.judge if task is not None else None
        judged = judge_run_of(runs) if judge_name is not None and self.judge is None else None
        late = False
        if judge_name is not None and self.judge is None:
            if judged is None:
                await self._queue_judge(trigger, runs, judge_name)
                return None
            if judged.state not in RunState.FINAL:
                # A judge that never got a runner, or whose runner was lost, must not hold the ranking for good.
                late = self.services.clock() - judged.created_at >= JUDGE_PATIENCE * deadline
                if not late:
                    return None
        attempts = await self.evidence(trigger, runs)
        if judge_name is None:
            ranking = rank_on_evidence(attempts)
        elif judged is not None:
            minutes = round(JUDGE_PATIENCE * deadline.total_seconds() / 60)
            answer, failure = (None, f"its run did not end within {minutes} minutes") if late else judge_answer(judged)
            ranking = rank_with_judge(attempts, judge_name, answer, failure)
        else:
            assert self.judge is not None
            try:
                answer, failure = await self.judge(judge_name, trigger, attempts)
            except Exception as exc:  # the judge is an agent: whatever it does, the evidence ranking stands
                answer, failure = None, f"{type(exc).__name__}: {exc}"
            ranking = rank_with_judge(attempts, judge_name, answer, failure)
        if not await self._publish(trigger.id, ranking, first=True):
            return None
        if late and judged is not None:  # its answer would come too late to count: stop it
            await self.runs.move(judged.id, RunState.CANCELLED, messages.RUN_JUDGE_LATE)
            self.services.runs_changed.set()
        log.info("ranked the %s attempts of trigger %s (%s)", len(attempts), trigger.id, ranking.source)
        return ranking

    async def _queue_judge(self, trigger: Trigger, runs: Sequence[Run], judge: str) -> None:
        """Queue the fan-out's judge run (once; the scheduler starts it like any run, except that review capacity
        does not hold it back)."""
        base = next((run.base_branch for run in fan_out(runs) if run.base_branch), None)
        judged = await self.runs.add_judge(trigger, judge, base_branch=base)
        if judged is not None:
            log.info("trigger %s: queued run %s, the judge %s of its attempts", trigger.id, judged.id, judge)
            self.services.runs_changed.set()

    async def evidence(self, trigger: Trigger, runs: Sequence[Run]) -> list[Evidence]:
        attempts = fan_out(runs)
        pulls = await self._pulls(trigger.id)
        heads = {pull.head_sha for pull in pulls.values() if pull.head_sha}
        ci = await self.ci(trigger.repository, sorted(heads)) if self.ci is not None and heads else {}
        evidence = []
        for run in attempts:
            pull = pulls.get(run.id)
            verdict = ci.get(pull.head_sha, "none") if pull is not None and pull.head_sha else "none"
            evidence.append(evidence_of(run, pull, verdict))
        return evidence

    async def rerank(self, trigger_id: int) -> Ranking | None:
        """Rank a published fan-out again with the CI known now; the new ranking when it changed, else None."""
        trigger = await self.runs.trigger(trigger_id)
        if trigger is None or trigger.ranked_at is None:
            return None
        old = Ranking.from_json(trigger.ranking)
        if old is None:
            return None
        attempts = await self.evidence(trigger, await self.runs.runs_of_trigger(trigger_id))
        if old.source == "judge":
            ci = {e.run_id: e.ci for e in attempts}
            rows = tuple(replace(row, ci=ci.get(row.run_id, row.ci)) for row in old.rows)
            ranking = replace(old, rows=rows)
        else:
            ranking = rank_on_evidence(attempts, note=old.note)
        if ranking == old:
            return None
        if not await self._publish(trigger_id, ranking, first=False, previous=trigger.ranking):
            return None
        log.info("re-ranked the attempts of trigger %s on new CI", trigger_id)
        return ranking

    async def _pulls(self, trigger_id: int) -> dict[int, PullRequest]:
        async with self.services.store.sessions() as session:
            rows = await session.scalars(
                select(PullRequest).where(PullRequest.trigger_id == trigger_id, PullRequest.run_id.is_not(None))
            )
            return {row.run_id: row for row in rows.all() if row.run_id is not None}

    async def _publish(self, trigger_id: int, ranking: Ranking, *, first: bool, previous: str | None = None) -> bool:
        """Store the ranking (once: the first writer wins; a re-rank only over the ranking it read)."""
        now = self.services.clock()
        text = ranking.to_json()
        async with self.services.store.sessions.begin() as session:
            where = [Trigger.id == trigger_id]
            where.append(Trigger.ranked_at.is_(None) if first else Trigger.ranking == previous)
            result = await session.execute(
                update(Trigger).where(*where).values(ranking=text, ranked_at=now)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                return False
            for row in ranking.rows:
                await session.execute(
                    update(PullRequest).where(PullRequest.run_id == row.run_id)
                    .values(rank=row.rank if row.pr is not None else None,
                            rank_reason=row.reason if row.pr is not None else None, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            if not first:
                # The tracker finds changed triggers by their runs' `updated_at` (in any process): touch the
                # ended ones, whose `updated_at` no claim reads.
                await session.execute(
                    update(Run).where(Run.trigger_id == trigger_id, Run.state.in_(RunState.FINAL),
                                      (Run.state != RunState.SUCCEEDED) | (Run.progress == DELIVERED))
                    .values(updated_at=now).execution_options(synchronize_session=False)
                )
        return True


__all__ = ["CiLookup", "Judge", "JudgeAnswer", "Ranker", "evidence_of", "fan_out", "judge_answer", "judge_run_of"]
