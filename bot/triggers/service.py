"""The trigger kernel: who Kickoff is, the permission gate, the repo config a delivery is read with, and starting
a trigger (its runs planned once, its one tracking comment posted once).

A label, a command or a failing check becomes runs in three steps: read `.github/kickoff.yml` from the default
branch, pass the permission gate, plan the trigger's rows (`bot.runs.planning`) and post its tracking comment.
Every step is safe to repeat: the dispatcher retries a delivery that failed half-way, and an operator can replay one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from bot import messages
from bot.config import ConfigError, RepoConfig
from bot.config.model import Permissions
from bot.gate import Decision, PermissionCache, Sender, authorize, ignored
from bot.github import GitHubError
from bot.routing import Event, Site
from bot.runs.planning import PlannedTrigger, TriggerRequest, find_trigger, plan_trigger, set_tracking_comment
from bot.runs.snapshot import take_snapshot
from bot.services import Services
from bot.triggers.replies import find_own_comment, report_config_error
from bot.untrusted import clean_untrusted

log = logging.getLogger(__name__)

SAFE_POLICY: Final = Permissions()
"""The gate when the repository's own policy cannot be read: `write` at least, nobody allowed by name, no bots."""
CONFIG_ERRORS_VERB: Final = "config"
"""Not a read verb, so it needs `min_permission` (write under `SAFE_POLICY`)."""


class Triggers:
    """The triggers of one process. It keeps what must not be shared between processes (or tests): live
    permissions for a short while."""

    def __init__(self, services: Services, *, permissions: PermissionCache | None = None) -> None:
        self.services = services
        self.permissions = permissions or PermissionCache()
        # The login `own_login` last learnt, for the checks that take it without asking (None until a bot spoke).
        self._own_login: str | None = None

    async def own_login(self) -> str | None:
        """The App's bot login (`<slug>[bot]`; the gateway asks GitHub once); None when it cannot be learnt."""
        if self.services.settings.app_id is None:
            return None
        try:
            app = await self.services.require_github().get_app()
        except GitHubError as exc:
            log.warning("could not learn the App's bot login: %s", exc)
            return None
        self._own_login = app.bot_login
        return self._own_login

    async def is_kickoff(self, sender: Sender) -> bool:
        """Whether the sender is Kickoff's own bot: checked before anything else, so Kickoff never answers itself."""
        if not sender.is_bot:
            return False
        login = await self.own_login()
        return login is not None and sender.login.lower() == login.lower()

    def considers(self, sender: Sender, config: RepoConfig) -> bool:
        """Whether a delivery from `sender` is to be considered at all (False: Kickoff itself or a bot nobody
        allowed)."""
        reason = ignored(sender, config.permissions, own_login=self._own_login)
        if reason is not None:
            log.info("ignoring a delivery from %s (%s)", sender.login, reason.value)
            return False
        return True

    async def load_config(self, site: Site) -> RepoConfig:
        """The repo's config from its default branch (never a pull request's head); raises `ConfigError`. Read
        as every other reader reads it (no `ref`: the default branch), so one stored ETag serves them all."""
        return await self.services.configs.load(site.installation_id, site.repository)

    async def config_for(self, event: Event, site: Site, sender: Sender) -> RepoConfig | None:
        """The repo config for a delivery from `sender`, or None when there is nothing to do: the sender is Kickoff
        itself, the config is broken (reported where the user looks, only to a sender who passes the safe default
        gate), or the config screens the sender out."""
        if await self.is_kickoff(sender):
            return None
        try:
            config = await self.load_config(site)
        except ConfigError as exc:
            if await self.may_see_config_errors(site, sender):
                await report_config_error(self.services.require_github(), event, site, exc)
            return None
        if not self.considers(sender, config):
            return None
        return config

    async def may_see_config_errors(self, site: Site, sender: Sender) -> bool:
        """Whether a broken config is reported to `sender`: only to those who pass the gate under `SAFE_POLICY`. A
        broken file says nothing about who may trigger, so anyone else (a stranger's comment) gets no reply."""
        decision = await self._authorize(site, sender, CONFIG_ERRORS_VERB, SAFE_POLICY)
        if not decision.allowed:
            log.info("config of %s is broken; not reported to %s (%s)", site.repository, sender.login,
                     decision.reason.value)
        return decision.allowed

    async def gate(
        self, site: Site, config: RepoConfig, sender: Sender, verb: str, *, fork: str | None = None
    ) -> Decision:
        """May `sender` use `verb` here, under the repository's policy (and from `fork`, for a fork's head)?"""
        return await self._authorize(site, sender, verb, config.permissions, fork=fork)

    async def _authorize(
        self, site: Site, sender: Sender, verb: str, policy: Permissions, *, fork: str | None = None
    ) -> Decision:
        return await authorize(
            self.services.require_github(),
            self.permissions,
            now=self.services.clock(),
            installation_id=site.installation_id,
            owner=site.owner,
            repo=site.repo,
            verb=verb,
            sender=sender,
            policy=policy,
            own_login=self._own_login,
            fork=fork,
        )

    async def ensure_tracking_comment(self, site: Site, planned: PlannedTrigger) -> int:
        """Post the trigger's tracking comment unless it exists (also when an interrupted attempt posted it)."""
        if planned.tracking_comment_id is not None:
            return planned.tracking_comment_id
        github = self.services.require_github()
        marker = messages.TRACKING_MARKER.format(trigger_id=planned.trigger_id)
        comment_id = None if planned.created else await find_own_comment(github, site, marker)
        if comment_id is None:
            body = messages.tracking_comment(
                planned.task,
                planned.sender,
                [(run.id, run.agent, run.attempt, run.state) for run in planned.runs],
                planned.trigger_id,
            )
            comment_id = await github.comment(site.installation_id, site.owner, site.repo, site.issue_number, body)
        await set_tracking_comment(self.services, planned.trigger_id, comment_id)
        return comment_id

    async def plan(
        self,
        event: Event,
        site: Site,
        *,
        seq: int,
        source: str,
        task: str,
        agents: Sequence[str],
        attempts: int,
        sender: str,
        instructions: str = "",
        reason: str | None = None,
    ) -> PlannedTrigger:
        """Plan the trigger's runs (once per delivery and seq): the scheduler may start them from here on.

        Planning comes before any of the trigger's paced writes (the 👀, the tracking comment, the label's removal),
        so a busy write pacer never delays starting runs; `ensure_tracking_comment` posts the comment after.

        The issue's text and comments are frozen here, with the trigger (bot.runs.snapshot): what is written after
        this moment reaches the agent only from people who may start runs.
        """
        services = self.services
        github = services.require_github()
        snapshot = None
        instructions = await asyncio.to_thread(clean_untrusted, instructions)  # off the loop; planning keeps it
        if await find_trigger(services, event.delivery_id, seq) is None:
            held = None
            if source != "fix":  # a person asked: the gate has just cached their permission
                try:
                    held = await self.permissions.get(
                        github, site.installation_id, site.owner, site.repo, sender, now=services.clock())
                except GitHubError:
                    held = None
            snapshot = await take_snapshot(github, site.installation_id, site.owner, site.repo, site.issue_number,
                                           event.payload, now=services.clock(), sender=sender, sender_permission=held)
        planned = await plan_trigger(
            services,
            TriggerRequest(
                delivery_id=event.delivery_id,
                seq=seq,
                installation_id=site.installation_id,
                repository=site.repository,
                issue_number=site.issue_number,
                task=task,
                agents=tuple(agents),
                attempts=attempts,
                sender=sender,
                source=source,
                instructions=instructions,
                is_pull_request=site.is_pull_request,
                base_branch=site.default_branch,
                reason=reason,
                snapshot=snapshot,
            ),
        )
        return planned
