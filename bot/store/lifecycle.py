"""The run lifecycle: which state may follow which. Pure; persisted by `bot.store.runs`.

    queued → waiting → starting → running → succeeded | no_changes | failed | cancelled | timed_out
                         starting → queued   (its worker died before the runner existed; at most
                                              `MAX_REQUEUES` times)

A run can be cancelled at any point before it ends; a run that never reached `running` can still fail or time out
(its runner could not be started, or never reported). Final states are final: a retry is a new run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bot import messages
from bot.runspec import Outcome, RunResult
from bot.store.models import Run, RunState

S = RunState

ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    S.QUEUED: frozenset({S.WAITING, S.STARTING, S.CANCELLED}),
    S.WAITING: frozenset({S.STARTING, S.CANCELLED}),
    # `starting → queued`: the worker that claimed the run died before its runner existed (bot.runs.following).
    S.STARTING: frozenset({S.RUNNING, S.QUEUED, S.FAILED, S.CANCELLED, S.TIMED_OUT}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.NO_CHANGES, S.FAILED, S.CANCELLED, S.TIMED_OUT}),
    S.SUCCEEDED: frozenset(),
    S.NO_CHANGES: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.TIMED_OUT: frozenset(),
}
STATES: Final = tuple(ALLOWED)

# How often a run goes back from `starting` to `queued` (its worker died before its runner existed) before it fails.
MAX_REQUEUES: Final = 3
# The states in which a runner may be alive (what the parallel limits count).
ON_RUNNER: Final = (S.STARTING, S.RUNNING)
# What a user can retry: the runs that ended without a result.
RETRYABLE: Final = (S.FAILED, S.TIMED_OUT, S.CANCELLED)

_OUTCOME_STATES: Final[Mapping[Outcome, str]] = {
    "succeeded": S.SUCCEEDED,
    "no_changes": S.NO_CHANGES,
    "failed": S.FAILED,
    "timed_out": S.TIMED_OUT,
    "cancelled": S.CANCELLED,
}


class InvalidTransition(ValueError):
    """A state change the lifecycle forbids, e.g. `succeeded → running`."""

    def __init__(self, from_state: str | None, to_state: str) -> None:
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"a run cannot go from {from_state!r} to {to_state!r}")


def is_final(state: str) -> bool:
    return state in RunState.FINAL


def can_transition(from_state: str, to_state: str) -> bool:
    return to_state in ALLOWED.get(from_state, frozenset())


def check_transition(from_state: str, to_state: str) -> None:
    """Raise `InvalidTransition` unless `from_state → to_state` is allowed."""
    if not can_transition(from_state, to_state):
        raise InvalidTransition(from_state, to_state)


def path_to(from_state: str, to_state: str) -> tuple[str, ...]:
    """The states to pass through to reach `to_state`: a result reported while `starting` goes via `running`."""
    if can_transition(from_state, to_state):
        return (to_state,)
    if from_state == S.STARTING and can_transition(S.RUNNING, to_state):
        return (S.RUNNING, to_state)
    raise InvalidTransition(from_state, to_state)


def state_for_outcome(outcome: Outcome) -> str:
    """The final state a runner's outcome puts a run in."""
    return _OUTCOME_STATES[outcome]


def branch_problem(run: Run, result: RunResult) -> str | None:
    """Why `result` cannot be this run's (it names a branch other than the one Kickoff assigned), or None.

    The branch is written on the run before its runner starts, so a run without one has no branch to accept.
    """
    if result.branch is None and not result.pushed:
        return None
    if run.branch is not None and result.branch in (None, run.branch):
        return None
    return messages.REPORT_WRONG_BRANCH.format(expected=run.branch or "none yet")
