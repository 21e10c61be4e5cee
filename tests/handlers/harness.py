"""The triggers harness: real payloads, varied per case, through the inbox, the real `Dispatcher` and
`root_router()`, against a real database, with GitHub behind the shared `FakeGitHub`."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.dispatcher import Dispatcher
from bot.features import Features
from bot.github import GitHubAPI, IssueComment, Repository
from bot.handlers import root_router
from bot.root import compose
from bot.store.db import Store
from bot.store.inbox import NewDelivery
from bot.store.models import Delivery, Run, RunTransition, Trigger
from tests.deliveries import load
from tests.fake_github import FakeGitHub
from tests.support import make_settings

APP_ID = 424242
INSTALLATION_ID = 7001
OWNER, REPO = "Codertocat", "Hello-World"
FULL_NAME = f"{OWNER}/{REPO}"
DEFAULT_BRANCH = "master"  # what the fixtures' `repository.default_branch` says
ISSUE = 1
PULL = 2
CONFIG = ".github/kickoff.yml"
MAINTAINER = "Codertocat"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def user(login: str = MAINTAINER, type_: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**8, "type": type_, "site_admin": False}


def _base(name: str, sender: dict[str, Any]) -> dict[str, Any]:
    payload = copy.deepcopy(load(name))
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["sender"] = sender
    return payload


def labeled(label: str, *, sender: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = _base("issues.labeled.1.json", sender or user())
    payload["label"] = {**payload["label"], "name": label}
    payload["issue"]["labels"] = [*payload["issue"]["labels"], payload["label"]]
    return payload


def opened(labels: list[str], *, sender: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = _base("issues.opened.1.json", sender or user())
    template = payload["issue"]["labels"][0]
    payload["issue"]["labels"] = [{**template, "name": name} for name in labels]
    payload["issue"]["user"] = payload["sender"]
    return payload


def issue_comment(
    body: str,
    *,
    sender: dict[str, Any] | None = None,
    on_pull_request: bool = False,
    action: str = "created",
    previous: str | None = None,
    via_app: int | None = None,
    comment_id: int = 492700400,
) -> dict[str, Any]:
    name = "issue_comment.edited.1.json" if action == "edited" else "issue_comment.created.4.json"
    payload = _base(name, sender or user())
    payload["comment"].update(body=body, id=comment_id, user=payload["sender"])
    payload["comment"]["performed_via_github_app"] = (
        {"id": via_app, "slug": "kickoff", "name": "Kickoff"} if via_app is not None else None
    )
    if action == "edited":
        payload["changes"] = {"body": {"from": previous or ""}}
    if on_pull_request:
        payload["issue"]["number"] = PULL
        payload["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{FULL_NAME}/pulls/{PULL}"}
    return payload


def _with_head(payload: dict[str, Any], head_repo: str | None) -> dict[str, Any]:
    if head_repo is not None:
        payload["pull_request"]["head"]["repo"] = {**payload["pull_request"]["head"]["repo"], "full_name": head_repo}
    return payload


def review_comment(
    body: str, *, sender: dict[str, Any] | None = None, head_repo: str | None = None
) -> dict[str, Any]:
    payload = _base("pull_request_review_comment.created.2.json", sender or user())
    payload["comment"].update(body=body, user=payload["sender"])
    return _with_head(payload, head_repo)


def review(body: str | None, *, sender: dict[str, Any] | None = None, head_repo: str | None = None) -> dict[str, Any]:
    payload = _base("pull_request_review.submitted.2.json", sender or user())
    payload["review"].update(body=body, user=payload["sender"])
    return _with_head(payload, head_repo)


class Harness:
    """One repository's world: the database, the fake GitHub, a clock; `deliver` runs a delivery end to end."""

    def __init__(self, services: Features, gh: FakeGitHub, clock: Clock) -> None:
        self.services = services
        self.gh = gh
        self.clock = clock
        self.router = root_router()
        gh.permissions[MAINTAINER] = "write"
        gh.repositories[(OWNER, REPO)] = Repository(
            id=1296269, owner=OWNER, name=REPO, full_name=FULL_NAME, default_branch=DEFAULT_BRANCH, private=False,
            fork=False, archived=False, html_url=f"https://github.com/{FULL_NAME}",
            clone_url=f"https://github.com/{FULL_NAME}.git",
        )

    # Arranging.

    def config(self, text: str, *, owner: str = OWNER, repo: str = REPO) -> None:
        self.gh.set_file(owner, repo, CONFIG, text)

    def label_is_on(self, *labels: str, number: int = ISSUE) -> None:
        current = self.gh.labels[(OWNER, REPO, number)]
        current.extend(label for label in labels if label not in current)

    # Acting.

    async def deliver(self, event: str, payload: dict[str, Any], *, delivery_id: str | None = None) -> Delivery:
        did = delivery_id or str(uuid.uuid4())
        action = payload.get("action")
        await self.services.inbox.insert_many([NewDelivery(
            id=did, event=event, action=action if isinstance(action, str) else None,
            installation_id=payload["installation"]["id"], repository=payload["repository"]["full_name"],
            payload=json.dumps(payload), received_at=self.clock(),
        )])
        await self.dispatch()
        row = await self.services.inbox.get(did)
        assert row is not None
        return row

    async def dispatch(self) -> None:
        await Dispatcher(self.services, self.router).run_until_idle()

    async def replay(self, delivery_id: str) -> Delivery:
        """An operator's replay of a finished delivery (same delivery id, handled again from scratch)."""
        assert await self.services.inbox.requeue(delivery_id)
        await self.dispatch()
        row = await self.services.inbox.get(delivery_id)
        assert row is not None
        return row

    # Asserting.

    async def triggers(self) -> list[Trigger]:
        async with self.services.store.sessions() as session:
            return list((await session.scalars(select(Trigger).order_by(Trigger.id))).all())

    async def runs(self) -> list[Run]:
        async with self.services.store.sessions() as session:
            return list((await session.scalars(select(Run).order_by(Run.id))).all())

    async def transitions(self) -> list[RunTransition]:
        async with self.services.store.sessions() as session:
            return list((await session.scalars(select(RunTransition).order_by(RunTransition.id))).all())

    def bot_comments(self, number: int = ISSUE) -> list[IssueComment]:
        return [c for c in self.gh.comments_on(OWNER, REPO, number) if c.author == self.gh.bot_login]

    def writes(self) -> list[str]:
        """The verbs of every call that changed something on GitHub."""
        reads = {"get_file", "get_collaborator_permission", "list_issue_comments", "get_repository", "get_issue",
                 "list_labels", "get_pull_request", "get_app"}
        return [verb for verb, _ in self.gh.calls if verb not in reads]


@asynccontextmanager
async def harness(database_url: str, github: GitHubAPI | None = None, **settings: Any) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {"APP_ID": APP_ID, "KICKOFF_RETRY_BASE_SECONDS": 0, "KICKOFF_MAX_ATTEMPTS": 3}
    values.update(settings)
    store = Store(database_url)
    await store.migrate()
    clock = Clock()
    gh = FakeGitHub(now=clock)
    services = compose(make_settings(database_url, **values), store, github=github or gh, clock=clock)
    try:
        yield Harness(services, gh, clock)
    finally:
        await store.close()
