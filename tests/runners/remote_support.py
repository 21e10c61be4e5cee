"""Support for the remote backends' tests: a run spec, an exit recorder, and waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.runs.backend import RunnerExit
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, AgentCommand, CommitIdentity, RunSpec

SECRETS = {ENV_GIT_TOKEN: "ghs_run_token_abcdefghijklmnop", ENV_RUN_SECRET: "run-secret-0123456789abcdef"}


def make_spec(run_id: int = 42, repository: str = "octo/hello", **extra: object) -> RunSpec:
    return RunSpec.model_validate({
        "run_id": run_id,
        "repository": repository,
        "clone_url": f"https://github.com/{repository}.git",
        "base_branch": "main",
        "branch": f"kickoff/12-fix-claude-{run_id}",
        "task": "fix",
        "issue_number": 12,
        "agent": AgentCommand(name="claude", adapter="claude", env=("ANTHROPIC_API_KEY",)),
        "prompt": "Fix issue #12.",
        "commit_identity": CommitIdentity(name="kickoff[bot]", email="kickoff[bot]@users.noreply.github.com"),
        "commit_message": "fix: crash (#12)",
        "report_url": f"https://kickoff.example.com/api/runs/{run_id}/report",
        **extra,
    })


@dataclass
class Exits:
    """An `ExitHandler` that records each exit."""

    seen: list[RunnerExit] = field(default_factory=list)

    async def __call__(self, exit_: RunnerExit) -> None:
        self.seen.append(exit_)

    async def wait(self, count: int = 1, timeout: float = 10.0) -> list[RunnerExit]:
        await eventually(lambda: _at_least(self.seen, count), timeout, f"{count} runner exit(s)")
        return self.seen


async def _at_least(items: list[RunnerExit], count: int) -> bool:
    return len(items) >= count


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
