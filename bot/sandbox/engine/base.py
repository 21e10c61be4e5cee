"""What the engine's resources share: the records they hand out and the base class each resource builds on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.sandbox import payloads as P
from bot.sandbox.clock import Clock
from bot.sandbox.git import Identity
from bot.sandbox.state import State, User

if TYPE_CHECKING:
    from bot.sandbox.engine.core import Engine

Json = dict[str, Any]


@dataclass(frozen=True)
class AppCredentials:
    """What a test or the demo needs to run an App against the sandbox."""

    app_id: int
    slug: str
    private_key_pem: str
    webhook_secret: str | None
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    old: str
    new: str


@dataclass
class Violation:
    """A request or webhook that does not match GitHub's description."""

    where: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: " + "; ".join(self.problems)


def identity_of(who: User) -> Identity:
    return Identity(who.name or who.login, who.email or f"{who.id}+{who.login}@users.noreply.github.com")


class Part:
    """One resource's behaviour. Its data lives in the engine's shared `State`, so a resource holds only the engine,
    through which it reaches the other resources (a merge closes issues, a push starts CI)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    @property
    def urls(self) -> P.Urls:
        return self.engine.urls
