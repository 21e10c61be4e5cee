"""Declarative routing: feature routers keyed on event and action, and `/agent` verbs routed alike, composed at
the root; and where a delivery happened (`Site`), which every handler and the trigger kernel share."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import BaseModel

from bot.events import InstallationRef
from bot.events import Repository as RepositoryModel

if TYPE_CHECKING:
    from bot.config import RepoConfig
    from bot.services import Services
    from bot.slash_commands import Command

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery as a handler sees it. Handlers must be idempotent: the same delivery may arrive again."""

    delivery_id: str
    name: str
    action: str | None
    payload: dict[str, Any]
    installation_id: int | None = None
    repository: str | None = None
    attempt: int = 1

    @classmethod
    def from_json(cls, delivery_id: str, name: str, body: str, **extra: Any) -> Event:
        payload = orjson.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        action = payload.get("action")
        return cls(delivery_id, name, action if isinstance(action, str) else None, payload, **extra)

    @property
    def key(self) -> str:
        return f"{self.name}.{self.action}" if self.action else self.name

    def parse(self, model: type[M]) -> M:
        """Validate the payload into a (minimal) typed model at the boundary."""
        return model.model_validate(self.payload)


Handler = Callable[[Event, "Services"], Awaitable[None]]


@dataclass
class Router:
    """Maps `event` or `event.action` to handlers. `Router(a, b)` composes feature routers."""

    children: tuple[Router, ...] = ()
    _routes: dict[str, list[Handler]] = field(default_factory=lambda: defaultdict(list))

    def __init__(self, *children: Router) -> None:
        self.children = children
        self._routes = defaultdict(list)

    def on(self, *keys: str) -> Callable[[Handler], Handler]:
        """Register a handler for one or more `event` or `event.action` keys."""
        for key in keys:
            if not key or key.count(".") > 1:
                raise ValueError(f"route key must be 'event' or 'event.action', got {key!r}")

        def register(handler: Handler) -> Handler:
            for key in keys:
                self._routes[key].append(handler)
            return handler

        return register

    def handlers_for(self, name: str, action: str | None) -> list[Handler]:
        found = list(self._routes.get(name, ()))
        if action:
            found += self._routes.get(f"{name}.{action}", ())
        for child in self.children:
            found += child.handlers_for(name, action)
        return found

    def keys(self) -> set[str]:
        out = set(self._routes)
        for child in self.children:
            out |= child.keys()
        return out

    async def dispatch(self, event: Event, services: Services) -> int:
        """Run every matching handler in order; return how many ran."""
        handlers = self.handlers_for(event.name, event.action)
        for handler in handlers:
            await handler(event, services)
        return len(handlers)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Everything a verb handler needs; the sender has already passed the permission gate for this verb."""

    services: Services
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


@dataclass(frozen=True, slots=True)
class Site:
    """The issue or pull request a delivery is about, and the installation that can act on it."""

    installation_id: int
    owner: str
    repo: str
    issue_number: int
    is_pull_request: bool
    default_branch: str | None

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"


def site_of(
    event: Event,
    repository: RepositoryModel,
    installation: InstallationRef | None,
    issue_number: int,
    *,
    is_pull_request: bool,
) -> Site | None:
    """The site of a delivery; None (and a warning) when it names no installation Kickoff could act through."""
    installation_id = event.installation_id or (installation.id if installation else None)
    if installation_id is None:
        log.warning("%s on %s carries no installation; Kickoff cannot act on it", event.key, repository.full_name)
        return None
    return Site(
        installation_id,
        repository.owner.login,
        repository.name,
        issue_number,
        is_pull_request,
        repository.default_branch,
    )
