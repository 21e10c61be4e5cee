"""The registry of `/agent` verbs: each feature registers the verbs it implements.

The triggers feature parses comments, applies the permission gate and then calls the handler registered for the
verb. A verb with no handler yet is answered honestly by the triggers feature (its machinery has not landed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.commands import Command
    from bot.config import RepoConfig
    from bot.routing import Event
    from bot.services import Services


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Everything a verb handler needs; the sender has already passed the permission gate for this verb."""

    services: Services
    event: Event
    command: Command
    config: RepoConfig
    installation_id: int
    owner: str
    repo: str
    issue_number: int
    is_pull_request: bool
    sender: str
    sender_permission: str
    comment_id: int | None  # the comment that carried the command (None for a review body or a button)
    seq: int  # the command's index within its delivery: with event.delivery_id, the trigger's idempotency key

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"


VerbHandler = Callable[[CommandContext], Awaitable[None]]

_VERBS: dict[str, VerbHandler] = {}


def verb(*names: str) -> Callable[[VerbHandler], VerbHandler]:
    """Register a handler for control verbs such as `cancel` (task verbs belong to the triggers feature)."""

    def register(handler: VerbHandler) -> VerbHandler:
        for name in names:
            if name in _VERBS and _VERBS[name] is not handler:
                raise ValueError(f"verb {name!r} is registered twice")
            _VERBS[name] = handler
        return handler

    return register


def handler_for(name: str) -> VerbHandler | None:
    return _VERBS.get(name)


def registered() -> frozenset[str]:
    return frozenset(_VERBS)
