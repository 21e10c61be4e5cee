"""The permission gate: who may make Kickoff do what, judged on live repository permission.

`decide` is the pure rule; `authorize` feeds it the sender's live permission from GitHub through a short-lived
per-process cache. Never judge by `author_association` or by a name suffix: a `[bot]` login with type `User` is a
person, and only the sender's `type` says it is a bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from bot.github.models import Permission, permission_at_least
from bot.slash_commands import RESERVED_VERBS

if TYPE_CHECKING:
    from bot.config.model import Permissions
    from bot.github import GitHubAPI

READ_VERBS: Final = frozenset({"help", "status", "queue"})
"""Verbs that only show something: `read` permission suffices (or less, when `min_permission` is lower)."""
WRITE_CREDENTIAL_VERBS: Final = frozenset({"retry", "rebase"})
"""Control verbs that run an agent (or push) with write credentials; every task verb does too."""
CACHE_TTL: Final = timedelta(seconds=60)


def required_permission(verb: str, min_permission: Permission) -> Permission:
    """The least permission `/agent <verb>` (or the label `agent:<verb>`) needs under `min_permission`."""
    if verb in READ_VERBS and permission_at_least(min_permission, "read"):
        return "read"
    return min_permission


def runs_with_write_credentials(verb: str) -> bool:
    """Whether the verb would start an agent (or push) with write credentials: refused on fork pull requests."""
    return verb not in RESERVED_VERBS or verb in WRITE_CREDENTIAL_VERBS


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a delivery, as GitHub reports it: `type` is `User`, `Bot` or `Organization`."""

    login: str
    type: str = "User"

    @property
    def is_bot(self) -> bool:
        return self.type == "Bot"


class Verdict(StrEnum):
    ALLOW = "allow"
    IGNORE = "ignore"  # silently: Kickoff itself, or a bot nobody allowed
    REFUSE = "refuse"  # with one polite reply


class Reason(StrEnum):
    PERMISSION = "permission"  # held ≥ required
    ALLOW_USERS = "allow_users"
    ALLOW_BOTS = "allow_bots"
    SELF = "self"
    BOT = "bot"
    INSUFFICIENT = "insufficient"
    FORK = "fork"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: Reason
    required: Permission
    held: Permission | None = None
    fork: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def ignored(
    sender: Sender, policy: Permissions, *, is_self: bool = False, own_login: str | None = None
) -> Reason | None:
    """Why a delivery from `sender` is ignored silently (whatever it asks), or None when it is considered."""
    if is_self or (own_login is not None and sender.login.lower() == own_login.lower()):
        return Reason.SELF
    if sender.is_bot and sender.login.lower() not in policy.allow_bots:
        return Reason.BOT
    return None


def decide(
    verb: str,
    sender: Sender,
    held: Permission | None,
    policy: Permissions,
    *,
    is_self: bool = False,
    own_login: str | None = None,
    fork: str | None = None,
) -> Decision:
    """Whether `sender`, holding `held` on the repository, may run `verb` here.

    `fork` names the fork a pull request comes from (None for an issue or a same-repository pull request).
    """
    required = required_permission(verb, policy.min_permission)
    skip = ignored(sender, policy, is_self=is_self, own_login=own_login)
    if skip is not None:
        return Decision(Verdict.IGNORE, skip, required, held)
    if sender.is_bot:
        reason = Reason.ALLOW_BOTS
    elif sender.login.lower() in policy.allow_users:
        reason = Reason.ALLOW_USERS
    elif held is not None and permission_at_least(held, required):
        reason = Reason.PERMISSION
    else:
        return Decision(Verdict.REFUSE, Reason.INSUFFICIENT, required, held)
    if fork is not None and runs_with_write_credentials(verb):
        return Decision(Verdict.REFUSE, Reason.FORK, required, held, fork)
    return Decision(Verdict.ALLOW, reason, required, held)


class PermissionCache:
    """Live permissions for at most `ttl` per (installation, repository, user): one process's, never shared."""

    def __init__(self, ttl: timedelta = CACHE_TTL) -> None:
        self._ttl = ttl
        self._entries: dict[tuple[int, str, str], tuple[Permission, datetime]] = {}

    async def get(
        self, github: GitHubAPI, installation_id: int, owner: str, repo: str, login: str, *, now: datetime
    ) -> Permission:
        key = (installation_id, f"{owner}/{repo}".lower(), login.lower())
        found = self._entries.get(key)
        if found is not None and now - found[1] < self._ttl:
            return found[0]
        permission = await github.get_collaborator_permission(installation_id, owner, repo, login)
        if len(self._entries) > 10_000:
            self._entries = {k: v for k, v in self._entries.items() if now - v[1] < self._ttl}
        self._entries[key] = (permission, now)
        return permission


async def authorize(
    github: GitHubAPI,
    cache: PermissionCache,
    *,
    now: datetime,
    installation_id: int,
    owner: str,
    repo: str,
    verb: str,
    sender: Sender,
    policy: Permissions,
    is_self: bool = False,
    own_login: str | None = None,
    fork: str | None = None,
) -> Decision:
    """`decide` with the sender's live permission; senders ignored silently cost no GitHub call."""
    held: Permission | None = None
    if ignored(sender, policy, is_self=is_self, own_login=own_login) is None:
        held = await cache.get(github, installation_id, owner, repo, sender.login, now=now)
    return decide(verb, sender, held, policy, is_self=is_self, own_login=own_login, fork=fork)
