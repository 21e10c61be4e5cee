"""Declarative routing: feature routers keyed on event and action, composed at the root (the `/agent` verbs are
routed alike, in `bot.handlers.verbs`); and where a delivery happened (`Site`), which every handler and the trigger
kernel share. A router is generic over what its handlers are given (`Router[Features]` at the root), so routing
names no container."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from bot.events import InstallationRef
from bot.events import Repository as RepositoryModel

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S")  # what handlers are given with each event


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


Handler = Callable[[Event, S], Awaitable[None]]


@dataclass
class Router(Generic[S]):
    """Maps `event` or `event.action` to handlers. `Router(a, b)` composes feature routers."""

    children: tuple[Router[S], ...] = ()
    _routes: dict[str, list[Handler[S]]] = field(default_factory=lambda: defaultdict(list))

    def __init__(self, *children: Router[S]) -> None:
        self.children = children
        self._routes = defaultdict(list)

    def on(self, *keys: str) -> Callable[[Handler[S]], Handler[S]]:
        """Register a handler for one or more `event` or `event.action` keys."""
        for key in keys:
            if not key or key.count(".") > 1:
                raise ValueError(f"route key must be 'event' or 'event.action', got {key!r}")

        def register(handler: Handler[S]) -> Handler[S]:
            for key in keys:
                self._routes[key].append(handler)
            return handler

        return register

    def handlers_for(self, name: str, action: str | None) -> list[Handler[S]]:
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

    async def dispatch(self, event: Event, context: S) -> int:
        """Run every matching handler in order, each given `context`; return how many ran."""
        handlers = self.handlers_for(event.name, event.action)
        for handler in handlers:
            await handler(event, context)
        return len(handlers)


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
