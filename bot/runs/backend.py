"""What every runner backend offers the scheduler: start a runner, follow it, cancel it, clean up after it.

The scheduler (this package) types against this Protocol; the backends (`bot.runners`) implement it and are built
by `bot.runners.registry.build_scheduler`, so the runs never import a backend.

A backend starts the same runner program (`kickoff run-agent --spec FILE`) somewhere and tells the scheduler when it
ended (`RunnerExit`). Progress and the result normally arrive through the report endpoint; the exit is the safety
net: a runner that ended without reporting is failed by the scheduler, not forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunResult, RunSpec

RUNNER_SECRETS = frozenset({ENV_GIT_TOKEN, ENV_RUN_SECRET})


class RunnerError(Exception):
    """A runner could not be started; the message is safe to show users (no token, no path outside the run)."""


@dataclass(frozen=True, slots=True)
class RunnerExit:
    """A runner ended. `result` is what it left behind (the result file), if anything."""

    run_id: int
    exit_code: int | None  # None when unknown (a runner re-attached after a restart)
    result: RunResult | None = None
    timed_out: bool = False
    cancelled: bool = False
    log_tail: str = ""


ExitHandler = Callable[[RunnerExit], Awaitable[None]]


class RunnerBackend(Protocol):
    """A place to run runners. `ref` identifies one runner (a pid, a job, a machine) and is stored on the run."""

    name: str

    def bind(self, on_exit: ExitHandler) -> None:
        """Where to report each runner's end; called once, before `start` or `follow`."""
        ...

    async def start(self, spec: RunSpec, secrets: Mapping[str, str], *, deadline: float) -> str:
        """Start a runner for `spec`, with `secrets` (the ENV_* variables) in its environment only; its ref.

        The runner is stopped and reported `timed_out` after `deadline` seconds. Raises `RunnerError`.
        """
        ...

    async def follow(self, run_id: int, ref: str, *, deadline: float) -> bool:
        """Re-attach to a runner started before a restart; False when it is gone (or is not that run's)."""
        ...

    async def collect(self, run_id: int, ref: str) -> RunResult | None:
        """The result a runner that ended unwatched left behind, if any."""
        ...

    async def find(self, run_id: int) -> str | None:
        """The ref of a runner this backend started for `run_id` whose ref was never recorded (its starter died
        between starting it and recording it), alive or not; None when there is none."""
        ...

    async def cancel(self, run_id: int) -> None:
        """Stop a runner this backend watches (its exit is then reported with `cancelled`)."""
        ...

    async def cleanup(self, run_id: int, ref: str) -> None:
        """Remove what a runner left behind (a workspace, a job)."""
        ...

    def running(self) -> Mapping[int, str]:
        """The runners this backend watches now: run id → ref."""
        ...

    def owns(self, ref: str) -> bool:
        """Whether this backend can see the runner `ref` names (e.g. a local process on this host)."""
        ...

    async def sweep(self, known: Collection[int]) -> list[str]:
        """At start-up: remove this backend's runners that no run in `known` holds (nor watched here); their refs."""
        ...

    async def aclose(self) -> None:
        """Stop watching; runners keep running and are re-attached by the next start-up's recovery."""
        ...
