"""The lifecycle table: every allowed and every forbidden transition."""

from __future__ import annotations

import itertools

import pytest

from bot.store.lifecycle import (
    ALLOWED,
    STATES,
    InvalidTransition,
    can_transition,
    check_transition,
    path_to,
    state_for_outcome,
)
from bot.store.models import RunState as S

EXPECTED_ALLOWED = {
    (S.QUEUED, S.WAITING), (S.QUEUED, S.STARTING), (S.QUEUED, S.CANCELLED),
    (S.WAITING, S.STARTING), (S.WAITING, S.CANCELLED),
    (S.STARTING, S.RUNNING), (S.STARTING, S.QUEUED), (S.STARTING, S.FAILED), (S.STARTING, S.CANCELLED),
    (S.STARTING, S.TIMED_OUT),
    (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.NO_CHANGES), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.TIMED_OUT),
}


def test_the_table_covers_every_state() -> None:
    assert set(STATES) == set(S.ACTIVE) | set(S.FINAL)
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == EXPECTED_ALLOWED


@pytest.mark.parametrize(("from_state", "to_state"), list(itertools.product(STATES, STATES)))
def test_transition(from_state: str, to_state: str) -> None:
    allowed = (from_state, to_state) in EXPECTED_ALLOWED
    assert can_transition(from_state, to_state) is allowed
    if allowed:
        check_transition(from_state, to_state)
    else:
        with pytest.raises(InvalidTransition, match="cannot go from"):
            check_transition(from_state, to_state)


@pytest.mark.parametrize("final", S.FINAL)
def test_final_states_are_final(final: str) -> None:
    assert not ALLOWED[final]
    with pytest.raises(InvalidTransition):
        path_to(final, S.RUNNING)


def test_a_result_reported_while_starting_passes_through_running() -> None:
    assert path_to(S.STARTING, S.SUCCEEDED) == (S.RUNNING, S.SUCCEEDED)
    assert path_to(S.STARTING, S.FAILED) == (S.FAILED,)
    assert path_to(S.RUNNING, S.NO_CHANGES) == (S.NO_CHANGES,)
    with pytest.raises(InvalidTransition):
        path_to(S.QUEUED, S.SUCCEEDED)


def test_outcomes_map_to_final_states() -> None:
    assert [state_for_outcome(o) for o in ("succeeded", "no_changes", "failed", "timed_out", "cancelled")] == [
        S.SUCCEEDED, S.NO_CHANGES, S.FAILED, S.TIMED_OUT, S.CANCELLED
    ]
