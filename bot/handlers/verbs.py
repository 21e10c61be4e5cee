"""The `/agent` control verbs' routing: what a verb handler is given (`CommandContext`) and `CommandRouter`, which
maps each verb to the one feature handler that takes it. Only the handlers route verbs, so it lives with them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.config import RepoConfig
from bot.features import Features
from bot.routing import Event, Site
from bot.slash_commands import Command


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Everything a verb handler needs; the sender has already passed the permission gate for this verb."""

    services: Features
    event: Event
    command: Command
    config: RepoConfig
    site: Site  # the issue or pull request the command was given on
    sender: str
    sender_permission: str
    comment_id: int | None  # the comment that carried the command (None for a review body or a button)
    seq: int  # the command's index within its delivery: with event.delivery_id, the trigger's idempotency key

    @property
    def installation_id(self) -> int:
        return self.site.installation_id

    @property
    def owner(self) -> str:
        return self.site.owner

    @property
    def repo(self) -> str:
        return self.site.repo

    @property
    def repository(self) -> str:
        return self.site.repository

    @property
    def issue_number(self) -> int:
        return self.site.issue_number

    @property
    def is_pull_request(self) -> bool:
        return self.site.is_pull_request


VerbHandler = Callable[[CommandContext], Awaitable[None]]


class CommandRouter:
    """Maps `/agent` control verbs (`cancel`, `queue`, …) to handlers. `CommandRouter(a, b)` composes feature
    routers, as `Router` does for events; a verb belongs to one feature only. Task verbs are the repo config's."""

    def __init__(self, *children: CommandRouter) -> None:
        self._verbs: dict[str, VerbHandler] = {}
        for child in children:
            for name, handler in child._verbs.items():
                self._add(name, handler)

    def _add(self, name: str, handler: VerbHandler) -> None:
        if self._verbs.get(name, handler) is not handler:
            raise ValueError(f"verb {name!r} is routed twice")
        self._verbs[name] = handler

    def verb(self, *names: str) -> Callable[[VerbHandler], VerbHandler]:
        """Route one or more verbs to a handler."""

        def register(handler: VerbHandler) -> VerbHandler:
            for name in names:
                self._add(name, handler)
            return handler

        return register

    def handler_for(self, name: str) -> VerbHandler:
        """The handler of `name`; a verb the parser accepts but nobody routes is a wiring mistake, not a reply."""
        try:
            return self._verbs[name]
        except KeyError:
            raise LookupError(f"no handler is routed for /agent {name}") from None

    def verbs(self) -> frozenset[str]:
        return frozenset(self._verbs)
