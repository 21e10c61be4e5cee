"""The permission gate: the pure rule over the whole permission matrix, and the cache in front of GitHub."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config.model import Permissions
from bot.gate import (
    PermissionCache,
    Reason,
    Sender,
    Verdict,
    authorize,
    decide,
    ignored,
    required_permission,
    runs_with_write_credentials,
)
from bot.github import PERMISSIONS, Permission
from tests.fake_github import FakeGitHub

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ANN = Sender("ann")


def policy(min_permission: Permission = "write", **extra: object) -> Permissions:
    return Permissions.model_validate({"min_permission": min_permission, **extra})


@pytest.mark.parametrize("minimum", PERMISSIONS)
@pytest.mark.parametrize("held", PERMISSIONS)
def test_task_verbs_need_min_permission(held: Permission, minimum: Permission) -> None:
    decision = decide("fix", ANN, held, policy(minimum))
    allowed = PERMISSIONS.index(held) >= PERMISSIONS.index(minimum)
    assert decision.allowed is allowed
    assert (decision.required, decision.held) == (minimum, held)
    assert decision.verdict is (Verdict.ALLOW if allowed else Verdict.REFUSE)
    assert decision.reason is (Reason.PERMISSION if allowed else Reason.INSUFFICIENT)


@pytest.mark.parametrize("verb", ["help", "status", "queue"])
@pytest.mark.parametrize("minimum", PERMISSIONS)
@pytest.mark.parametrize("held", PERMISSIONS)
def test_read_verbs_need_read_at_most(held: Permission, minimum: Permission, verb: str) -> None:
    needed: Permission = "none" if minimum == "none" else "read"
    assert required_permission(verb, minimum) == needed
    assert decide(verb, ANN, held, policy(minimum)).allowed is (PERMISSIONS.index(held) >= PERMISSIONS.index(needed))


@pytest.mark.parametrize("verb", ["cancel", "retry", "bump", "skip", "unqueue", "rebase", "priority"])
def test_other_control_verbs_need_min_permission(verb: str) -> None:
    assert required_permission(verb, "maintain") == "maintain"
    assert not decide(verb, ANN, "write", policy("maintain")).allowed
    assert decide(verb, ANN, "maintain", policy("maintain")).allowed


def test_allow_users_admits_whatever_the_permission_case_insensitively() -> None:
    rules = policy("admin", allow_users=["Ann"])
    decision = decide("fix", Sender("ANN"), "none", rules)
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, Reason.ALLOW_USERS)
    assert not decide("fix", Sender("bob"), "maintain", rules).allowed


def test_bots_are_ignored_unless_allow_listed_by_exact_login() -> None:
    bot = Sender("renovate[bot]", "Bot")
    assert decide("fix", bot, "admin", policy()).verdict is Verdict.IGNORE
    assert ignored(bot, policy()) is Reason.BOT
    assert decide("fix", bot, None, policy(allow_bots=["renovate"])).verdict is Verdict.IGNORE
    allowed = decide("fix", bot, None, policy(allow_bots=["Renovate[bot]"]))
    assert (allowed.verdict, allowed.reason) == (Verdict.ALLOW, Reason.ALLOW_BOTS)
    # A bot's login on allow_users is not enough: bots are allowed only through allow_bots.
    assert decide("fix", Sender("helper", "Bot"), "admin", policy(allow_users=["helper"])).verdict is Verdict.IGNORE


@pytest.mark.parametrize("login", ["robot", "x[bot]", "dependabot[bot]"])
def test_a_user_is_judged_as_a_person_whatever_the_name(login: str) -> None:
    person = Sender(login, "User")
    assert ignored(person, policy()) is None
    assert decide("fix", person, "write", policy()).allowed
    assert decide("fix", person, "read", policy()).verdict is Verdict.REFUSE


def test_kickoff_itself_is_ignored_even_when_allow_listed() -> None:
    me = Sender("kickoff[bot]", "Bot")
    rules = policy(allow_bots=["kickoff[bot]"])
    assert decide("fix", me, None, rules, own_login="Kickoff[bot]").reason is Reason.SELF
    assert decide("fix", ANN, "admin", policy(), is_self=True).verdict is Verdict.IGNORE


@pytest.mark.parametrize(
    ("verb", "refused"),
    [("fix", True), ("my-task", True), ("retry", True), ("rebase", True), ("cancel", False), ("status", False),
     ("help", False), ("queue", False)],
)
def test_fork_pull_requests_refuse_what_runs_with_write_credentials(verb: str, refused: bool) -> None:
    assert runs_with_write_credentials(verb) is refused
    decision = decide(verb, ANN, "admin", policy(), fork="mallory/repo")
    assert decision.allowed is not refused
    if refused:
        assert (decision.reason, decision.fork) == (Reason.FORK, "mallory/repo")


def test_missing_permission_is_reported_before_the_fork() -> None:
    decision = decide("fix", ANN, "read", policy(), fork="mallory/repo")
    assert decision.reason is Reason.INSUFFICIENT


async def test_the_cache_keeps_an_answer_for_a_minute_per_installation_repo_and_user() -> None:
    gh = FakeGitHub(permissions={"ann": "write"})
    cache = PermissionCache()
    assert await cache.get(gh, 1, "o", "r", "ann", now=NOW) == "write"
    gh.permissions["ann"] = "read"
    assert await cache.get(gh, 1, "O", "R", "ANN", now=NOW + timedelta(seconds=59)) == "write"
    assert await cache.get(gh, 2, "o", "r", "ann", now=NOW) == "read"  # another installation
    assert await cache.get(gh, 1, "o", "other", "ann", now=NOW) == "read"  # another repository
    assert await cache.get(gh, 1, "o", "r", "ann", now=NOW + timedelta(seconds=60)) == "read"
    assert len(gh.calls_to("get_collaborator_permission")) == 4


async def test_authorize_asks_github_only_for_senders_it_considers() -> None:
    gh = FakeGitHub(permissions={"ann": "maintain"})
    cache = PermissionCache()
    common = {"now": NOW, "installation_id": 1, "owner": "o", "repo": "r", "verb": "fix", "policy": policy()}
    bot = await authorize(gh, cache, sender=Sender("ci[bot]", "Bot"), **common)  # type: ignore[arg-type]
    assert bot.verdict is Verdict.IGNORE
    assert gh.calls == []
    ann = await authorize(gh, cache, sender=ANN, **common)  # type: ignore[arg-type]
    assert (ann.allowed, ann.held) == (True, "maintain")
