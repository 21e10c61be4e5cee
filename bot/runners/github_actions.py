"""The `github-actions` backend: one `workflow_dispatch` of `.github/workflows/kickoff-agent.yml` per run.

The workflow (written by `kickoff init-workflow`, template in `bot/workflow/kickoff-agent.yml`) installs a pinned
`kickoff-bot` and runs `kickoff run-agent --spec-url …`. A dispatch's inputs are visible to anyone who can read the
repository's Actions tab, so they carry no secret: the run id, a single-use short-lived spec ticket
(`bot.runs.tickets`), the adapter name (to install its CLI), the timeout and a correlation id. The job fetches its
spec, and a fresh report secret, with the ticket; it pushes with its own `GITHUB_TOKEN` (the workflow grants only
`contents: write`), so the installation token the scheduler mints for every run is not handed to it. Kickoff opens
the pull request with the App's token, so CI runs on it.

The dispatch asks for the new run's id (`return_run_details`, github.com since 2026-02-19). A server that answers
400 to that field (an older GHES) is dispatched without it, and the run is found among the workflow's runs by the
correlation id its `run-name` carries. Progress arrives by `workflow_run`/`workflow_job` webhooks
(`bot.handlers.workflow_runs`); the watchdog polls as a safety net, slowly, to spare the installation's rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets as random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Final

from bot.github import GitHubAPI, GitHubError, NotFound, ValidationFailed
from bot.github.auth import utcnow
from bot.runners.watchdog import RemoteRunner, RemoteStatus
from bot.runs.backend import RunnerError
from bot.runs.tickets import TicketStore
from bot.runspec import RunSpec

log = logging.getLogger(__name__)

WORKFLOW_FILE: Final = "kickoff-agent.yml"
PENDING: Final = frozenset({"queued", "waiting", "requested", "pending"})


def parse_ref(ref: str) -> tuple[str, str, int] | None:
    """`gha:owner/name:run id` → its parts; None when it is not this backend's ref."""
    if not ref.startswith("gha:"):
        return None
    repository, _, run_id = ref[4:].rpartition(":")
    owner, _, name = repository.partition("/")
    if not owner or not name or not run_id.isdigit():
        return None
    return owner, name, int(run_id)


def status_of(status: str | None, conclusion: str | None, html_url: str = "") -> RemoteStatus:
    """A workflow run's `status`/`conclusion` as the watchdog (and the webhook handler) reads it."""
    if status != "completed":
        return RemoteStatus("pending" if status in PENDING or status is None else "running")
    where = f" ({html_url})" if html_url else ""
    if conclusion == "success":
        return RemoteStatus("finished", 0, detail=f"the workflow run succeeded{where}")
    if conclusion == "cancelled":
        return RemoteStatus("finished", None, cancelled=True, detail=f"the workflow run was cancelled{where}")
    if conclusion == "timed_out":
        return RemoteStatus("finished", None, timed_out=True, detail=f"the workflow run timed out{where}")
    detail = f"the workflow run ended: {conclusion or 'unknown'}{where}"
    return RemoteStatus("finished", 1 if conclusion else None, detail=detail)


class GitHubActionsRunner(RemoteRunner):
    """Dispatches `workflow` on `ref` (default: the run's base branch) of the run's repository."""

    name = "github-actions"
    prefix = "gha:"

    def __init__(
        self,
        github: Callable[[], GitHubAPI],
        tickets: TicketStore,
        *,
        workflow: str = WORKFLOW_FILE,
        ref: str | None = None,
        poll_seconds: float = 60.0,
        grace_seconds: float = 120.0,
        ticket_ttl: timedelta = timedelta(minutes=30),
        find_attempts: int = 10,
        find_delay: float = 3.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(poll_seconds=poll_seconds, grace_seconds=grace_seconds, clock=clock)
        self._github = github
        self.tickets = tickets
        self.workflow = workflow
        self.ref = ref
        self.ticket_ttl = ticket_ttl
        self.find_attempts = find_attempts
        self.find_delay = find_delay
        self._sleep = sleep
        self._wall = now
        self._installations: dict[tuple[str, str], int] = {}
        self.run_details = True  # False once the server refused `return_run_details`

    async def _installation(self, owner: str, repo: str) -> int:
        key = (owner.lower(), repo.lower())
        if key not in self._installations:
            self._installations[key] = await self._github().get_installation_for_repo(owner, repo)
        return self._installations[key]

    async def _launch(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> str:
        owner, _, repo = spec.repository.partition("/")
        ref = self.ref or spec.base_branch
        github = self._github()
        try:
            installation = await self._installation(owner, repo)
            ticket = await self.tickets.issue(spec, ttl=min(self.ticket_ttl, timedelta(seconds=deadline)))
            correlation = random.token_hex(8)
            inputs = {
                "run_id": str(spec.run_id),
                "ticket": ticket,
                "adapter": spec.agent.adapter,
                "timeout_minutes": str(max(1, math.ceil(deadline / 60))),
                "correlation_id": correlation,
            }
            since = self._wall() - timedelta(minutes=1)
            run_id = await self._dispatch(github, installation, owner, repo, ref, inputs)
            if run_id is None:
                run_id = await self._find(github, installation, owner, repo, correlation, since)
        except NotFound:
            await self.tickets.forget(spec.run_id)
            raise RunnerError(
                f"GitHub found no workflow `.github/workflows/{self.workflow}` on branch `{ref}` of "
                f"{spec.repository}; add it with `kickoff init-workflow`"
            ) from None
        except ValidationFailed as exc:
            await self.tickets.forget(spec.run_id)
            raise RunnerError(f"GitHub refused to dispatch `{self.workflow}`: {exc.message}") from None
        except GitHubError as exc:
            await self.tickets.forget(spec.run_id)
            raise RunnerError(f"could not dispatch `{self.workflow}` ({exc})") from None
        except RunnerError:
            await self.tickets.forget(spec.run_id)
            raise
        return f"gha:{owner}/{repo}:{run_id}"

    async def _dispatch(
        self, github: GitHubAPI, installation: int, owner: str, repo: str, ref: str, inputs: Mapping[str, str]
    ) -> int | None:
        if self.run_details:
            try:
                return await github.dispatch_workflow(installation, owner, repo, self.workflow, ref, inputs, True)
            except GitHubError as exc:
                if exc.status != 400:
                    raise
                log.info("GitHub refused `return_run_details` (an older GitHub Enterprise Server); dispatching "
                         "without it and finding runs by their correlation id")
                self.run_details = False
        return await github.dispatch_workflow(installation, owner, repo, self.workflow, ref, inputs, False)

    async def _find(
        self, github: GitHubAPI, installation: int, owner: str, repo: str, correlation: str, since: datetime
    ) -> int:
        """The dispatched run, by the correlation id its `run-name` shows (GitHub lists it within seconds)."""
        for attempt in range(self.find_attempts):
            for run in await github.list_workflow_runs(installation, owner, repo, self.workflow, since):
                if correlation in run.display_title:
                    return run.id
            if attempt + 1 < self.find_attempts:
                await self._sleep(self.find_delay)
        raise RunnerError(f"dispatched `{self.workflow}`, but its workflow run did not show up on {owner}/{repo}")

    async def _observe(self, ref: str, within: float) -> RemoteStatus:
        parsed = parse_ref(ref)
        if parsed is None:
            return RemoteStatus("gone")
        owner, repo, run_id = parsed
        try:
            installation = await self._installation(owner, repo)
            run = await self._github().get_workflow_run(installation, owner, repo, run_id)
        except NotFound:
            return RemoteStatus("gone")
        return status_of(run.status, run.conclusion, run.html_url)

    async def _stop(self, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed is None:
            return
        owner, repo, run_id = parsed
        try:
            await self._github().cancel_workflow_run(await self._installation(owner, repo), owner, repo, run_id)
        except NotFound:
            return

    async def _remove(self, ref: str) -> None:
        return None  # a workflow run is history in the Actions tab; its spec ticket is spent or expires

    async def _list(self) -> dict[int, str]:
        # Orphaned workflow runs are not swept: finding them would mean listing every repository's runs, and a
        # run whose Kickoff run is gone cannot fetch its spec (the ticket's run is not on a runner), so it ends
        # at once, and in any case within its `timeout-minutes`.
        return {}
