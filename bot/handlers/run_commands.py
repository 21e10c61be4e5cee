"""`/agent cancel`, `/agent retry` and `/agent status`: the run-control verbs, answered by comment.

The sender has passed the permission gate (bot.handlers.commands, or the `agent-run` check's buttons in
bot.handlers.pull_requests). A run is addressed by its id and must belong to this issue or pull request (or have
opened it). Cancelling only marks the run: the scheduler that holds its runner stops it at its next pass. Retrying
adds a new attempt under the same trigger, so it is idempotent: once an agent's latest attempt is queued again,
repeating the command finds nothing to retry.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot import messages
from bot.handlers.verbs import CommandContext, CommandRouter
from bot.runs.tracking import agent_text, detail_text, duration_text, state_text
from bot.store.lifecycle import RETRYABLE, is_final
from bot.store.models import Run, RunState
from bot.store.runs import RunStore
from bot.triggers import post_reply

commands = CommandRouter()


def _kind(ctx: CommandContext) -> str:
    return "pull request" if ctx.is_pull_request else "issue"


def _names(runs: Sequence[Run]) -> str:
    return ", ".join(f"run {run.id} ({run.agent})" for run in runs)


async def _reply(ctx: CommandContext, body: str) -> None:
    """One comment per command (a retried or replayed delivery finds the answer it already gave)."""
    await post_reply(ctx.services.require_github(), ctx.event, ctx.site, body, seq=ctx.seq)


async def _addressed_run(ctx: CommandContext, runs: RunStore, ref: str) -> Run | None:
    """The run `ref` names, if it belongs here (this repository, and this issue or pull request)."""
    if not ref.isdigit():
        return None
    run = await runs.get(int(ref))
    if run is None or run.repository != ctx.repository:
        return None
    return run if ctx.issue_number in (run.issue_number, run.pr_number) else None


@commands.verb("cancel")
async def cancel_runs(ctx: CommandContext) -> None:
    """`/agent cancel` (the latest request's runs), `/agent cancel all`, `/agent cancel <run>`."""
    runs = ctx.services.runs
    kind = _kind(ctx)
    if ctx.command.run is not None:
        run = await _addressed_run(ctx, runs, ctx.command.run)
        if run is None:
            await _reply(ctx, messages.RUN_UNKNOWN.format(run=ctx.command.run, kind=kind))
            return
        if is_final(run.state):
            await _reply(ctx, messages.CANCEL_FINISHED.format(run=run.id, state=state_text(run.state)))
            return
        targets = [run]
    elif ctx.command.all_runs:
        targets = await runs.runs_on_issue(ctx.repository, ctx.issue_number, states=RunState.ACTIVE, limit=1000)
    else:
        trigger = await runs.latest_trigger(ctx.repository, ctx.issue_number)
        targets = [] if trigger is None else [
            run for run in await runs.runs_of_trigger(trigger.id) if run.state in RunState.ACTIVE
        ]
    reason = messages.RUN_CANCELLED_BY.format(user=ctx.sender)
    cancelled = [run for run in targets if await runs.move(run.id, RunState.CANCELLED, reason)]
    if cancelled:
        ctx.services.runs_changed.set()
        await _reply(ctx, messages.CANCEL_DONE.format(runs=_names(cancelled)))
    elif ctx.command.all_runs or ctx.command.run is not None:
        await _reply(ctx, messages.CANCEL_NOTHING.format(where=f"this {kind}"))
    else:
        await _reply(ctx, messages.CANCEL_NOTHING_LATEST.format(kind=kind))


@commands.verb("retry")
async def retry_runs(ctx: CommandContext) -> None:
    """`/agent retry` (each agent of the latest request whose last attempt failed), `/agent retry <run>`."""
    runs = ctx.services.runs
    reason = messages.RUN_RETRY_OF
    retried: list[tuple[Run, Run]] = []
    if ctx.command.run is not None:
        run = await _addressed_run(ctx, runs, ctx.command.run)
        if run is None:
            await _reply(ctx, messages.RUN_UNKNOWN.format(run=ctx.command.run, kind=_kind(ctx)))
            return
        if run.state not in RETRYABLE:
            await _reply(ctx, messages.RETRY_NOT_RETRYABLE.format(run=run.id, state=state_text(run.state)))
            return
        new = await runs.add_attempt(run, reason.format(run=run.id, user=ctx.sender))
        if new is None:
            await _reply(ctx, messages.RETRY_ALREADY.format(run=run.id))
            return
        retried.append((run, new))
    else:
        trigger = await runs.latest_trigger(ctx.repository, ctx.issue_number)
        latest: dict[str, Run] = {}
        for run in [] if trigger is None else await runs.runs_of_trigger(trigger.id):
            if run.agent not in latest or run.attempt > latest[run.agent].attempt:
                latest[run.agent] = run
        for run in latest.values():
            if run.state in RETRYABLE:
                new = await runs.add_attempt(run, reason.format(run=run.id, user=ctx.sender))
                if new is not None:
                    retried.append((run, new))
    if not retried:
        await _reply(ctx, messages.RETRY_NOTHING)
        return
    ctx.services.runs_changed.set()
    await _reply(ctx, messages.RETRY_DONE.format(
        runs=_names([old for old, _ in retried]), new=", ".join(f"run {new.id}" for _, new in retried)
    ))


@commands.verb("status")
async def run_status(ctx: CommandContext) -> None:
    """`/agent status`: a table of the runs of this issue or pull request."""
    found = await ctx.services.runs.runs_on_issue(ctx.repository, ctx.issue_number)
    if not found:
        await _reply(ctx, messages.STATUS_EMPTY.format(kind=_kind(ctx)))
        return
    attempts: dict[tuple[int, str], int] = {}
    for run in found:
        key = (run.trigger_id, run.agent)
        attempts[key] = max(attempts.get(key, 0), run.attempt)
    rows = [
        messages.STATUS_TABLE_ROW.format(
            run=run.id,
            agent=agent_text(run, attempts[(run.trigger_id, run.agent)], with_run=False),
            state=state_text(run.state),
            duration=duration_text(run),
            detail=detail_text(run),
        )
        for run in found
    ]
    table = "\n".join([messages.STATUS_TABLE_HEAD, *rows])
    await _reply(ctx, messages.STATUS_REPLY.format(kind=_kind(ctx), count=len(found), table=table))
