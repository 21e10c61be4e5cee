"""The permission matrix end to end: every held permission × every `min_permission`, for a label and a command."""

from __future__ import annotations

import pytest

from bot.github import PERMISSIONS, Permission
from tests.handlers.harness import Harness, issue_comment, labeled, user


@pytest.mark.parametrize("minimum", PERMISSIONS)
@pytest.mark.parametrize("held", PERMISSIONS)
async def test_a_command_runs_only_with_min_permission(hs: Harness, held: Permission, minimum: Permission) -> None:
    hs.config(f"permissions: {{min_permission: {minimum}}}")
    hs.gh.permissions["pat"] = held

    await hs.deliver("issue_comment", issue_comment("/agent fix", sender=user("pat")))

    allowed = PERMISSIONS.index(held) >= PERMISSIONS.index(minimum)
    assert len(await hs.triggers()) == (1 if allowed else 0)
    (comment,) = hs.bot_comments()
    if allowed:
        assert comment.body.startswith("Starting 1 run of `fix`")
    else:
        assert f"needs at least `{minimum}` permission on this repository and you have `{held}`" in comment.body


@pytest.mark.parametrize("minimum", ["read", "write", "admin"])
@pytest.mark.parametrize("held", PERMISSIONS)
async def test_a_label_runs_only_with_min_permission(hs: Harness, held: Permission, minimum: Permission) -> None:
    hs.config(f"permissions: {{min_permission: {minimum}}}")
    hs.gh.permissions["pat"] = held
    hs.label_is_on("agent:fix")

    await hs.deliver("issues", labeled("agent:fix", sender=user("pat")))

    allowed = PERMISSIONS.index(held) >= PERMISSIONS.index(minimum)
    assert len(await hs.triggers()) == (1 if allowed else 0)
    assert hs.gh.labels[("Codertocat", "Hello-World", 1)] == []
