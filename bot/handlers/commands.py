"""`/agent …` slash commands in comments, review comments and review bodies on issues and pull requests.

Each visible command line is parsed (`bot.slash_commands`), checked against the repo config, passed through the
permission gate, and then either planned (task verbs) or handed to the handler the command router routes the verb
to (control verbs: `router(verbs)`, composed at the root). Everything the delivery has to say goes into one reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from bot import messages
from bot.events import (
    AuthoredComment,
    InstallationRef,
    IssueCommentCommandEvent,
    PullRequestRef,
    PullRequestReviewCommentEvent,
    PullRequestReviewEvent,
    User,
)
from bot.events import Repository as RepositoryModel
from bot.features import Features
from bot.gate import Sender, Verdict, runs_with_write_credentials
from bot.github import GitHubAPI, PullRequestInfo
from bot.handlers.verbs import CommandContext, CommandRouter
from bot.routing import Event, Router
from bot.slash_commands import CommandError, ParsedCommand, help_table, new_commands, parse_commands
from bot.triggers import Site, known_tasks, post_reply, refusal, site_of, task_descriptions

log = logging.getLogger(__name__)

Source = Literal["comment", "review", "review_comment"]


@dataclass(frozen=True, slots=True)
class Carrier:
    """The text that carried the commands: what to react to, and whether Kickoff itself wrote it."""

    source: Source
    comment: AuthoredComment

    @property
    def context_comment_id(self) -> int | None:
        """`CommandContext.comment_id`: an issue comment's id (review comments' ids live in another namespace)."""
        return self.comment.id if self.source == "comment" else None

    async def acknowledge(self, github: GitHubAPI, site: Site) -> None:
        """React 👀 to the comment (a review body takes no reactions)."""
        repo = github.for_repo(site.installation_id, site.repository)
        if self.source == "comment":
            await repo.add_reaction_to_comment(self.comment.id, "eyes")
        elif self.source == "review_comment":
            await repo.add_reaction_to_review_comment(self.comment.id, "eyes")


def _pull_request_site(
    event: Event, repository: RepositoryModel, installation: InstallationRef | None, pull_request: PullRequestRef
) -> Site | None:
    return site_of(event, repository, installation, pull_request.number, is_pull_request=True)


class _ForkLookup:
    """Where a pull request's head lives, fetched at most once and only when a command needs to know."""

    def __init__(self, github: GitHubAPI, site: Site, pull_request: PullRequestRef | None) -> None:
        self._github = github
        self._site = site
        self._pull_request: PullRequestRef | PullRequestInfo | None = pull_request

    async def fork(self) -> str | None:
        if not self._site.is_pull_request:
            return None
        if self._pull_request is None:
            repo = self._github.for_repo(self._site.installation_id, self._site.repository)
            self._pull_request = await repo.get_pull_request(self._site.issue_number)
        return self._pull_request.fork_of(self._site.repository)


def _is_own_comment(services: Features, comment: AuthoredComment) -> bool:
    app = comment.performed_via_github_app
    return app is not None and services.settings.app_id is not None and app.id == services.settings.app_id


class _Commands:
    """The command events, carrying out control verbs with `verbs`."""

    def __init__(self, verbs: CommandRouter) -> None:
        self.verbs = verbs

    async def issue_comment_with_commands(self, event: Event, services: Features) -> None:
        payload = event.parse(IssueCommentCommandEvent)
        if payload.action == "edited":
            change = payload.changes.body if payload.changes else None
            if change is None:
                return  # the edit did not touch the text
            commands = new_commands(change.previous, payload.comment.body)
        else:
            commands = parse_commands(payload.comment.body)
        if not commands:
            return
        site = site_of(
            event, payload.repository, payload.installation, payload.issue.number,
            is_pull_request=payload.issue.is_pull_request,
        )
        if site is None:
            return
        carrier = Carrier("comment", payload.comment)
        await self.run_commands(event, services, site, payload.sender, carrier, commands, pull_request=None)

    async def review_comment_with_commands(self, event: Event, services: Features) -> None:
        payload = event.parse(PullRequestReviewCommentEvent)
        commands = parse_commands(payload.comment.body)
        if not commands:
            return
        site = _pull_request_site(event, payload.repository, payload.installation, payload.pull_request)
        if site is None:
            return
        carrier = Carrier("review_comment", payload.comment)
        await self.run_commands(event, services, site, payload.sender, carrier, commands,
                                pull_request=payload.pull_request)

    async def review_with_commands(self, event: Event, services: Features) -> None:
        payload = event.parse(PullRequestReviewEvent)
        commands = parse_commands(payload.review.body)
        if not commands:
            return
        site = _pull_request_site(event, payload.repository, payload.installation, payload.pull_request)
        if site is None:
            return
        carrier = Carrier("review", payload.review)
        await self.run_commands(event, services, site, payload.sender, carrier, commands,
                                pull_request=payload.pull_request)

    async def run_commands(
        self,
        event: Event,
        services: Features,
        site: Site,
        sender_user: User,
        carrier: Carrier,
        commands: list[ParsedCommand],
        *,
        pull_request: PullRequestRef | None,
    ) -> None:
        """Gate and carry out the commands of one comment, then answer in (at most) one reply."""
        if _is_own_comment(services, carrier.comment):
            return  # Kickoff never takes its own comments as commands
        github = services.require_github()
        sender = Sender(sender_user.login, sender_user.type)
        triggers = services.triggers
        config = await triggers.config_for(event, site, sender)
        if config is None:
            return

        forks = _ForkLookup(github, site, pull_request)
        replies: list[str] = []
        show_help = False
        reacted = False
        for seq, item in enumerate(commands):
            if isinstance(item, CommandError):
                replies.append(messages.COMMAND_ERROR.format(line=item.line, message=item.message))
                show_help = True
                continue
            verb = item.verb
            agents: tuple[str, ...] = ()
            attempts = 1
            if item.is_task:
                spec = config.task(verb)
                if spec is None:
                    replies.append(
                        messages.UNKNOWN_TASK_COMMAND.format(line=item.line, verb=verb, tasks=known_tasks(config))
                    )
                    show_help = True
                    continue
                agents = item.agents or spec.agents
                unknown = [agent for agent in agents if agent not in config.agents]
                if unknown:
                    replies.append(
                        messages.UNKNOWN_AGENTS.format(
                            line=item.line,
                            verb=verb,
                            unknown=messages.code_list(unknown),
                            agents=messages.code_list(sorted(config.agents)),
                        )
                    )
                    continue
                attempts = item.attempts or spec.attempts
            decision = await triggers.gate(site, config, sender, verb)
            if decision.allowed and runs_with_write_credentials(verb):
                fork = await forks.fork()  # asked only of a sender who could otherwise run the verb
                if fork is not None:
                    decision = await triggers.gate(site, config, sender, verb, fork=fork)
            if decision.verdict is Verdict.IGNORE:
                return
            if not decision.allowed:
                replies.append(refusal(decision, sender, messages.WHAT_COMMAND.format(verb=verb)))
                continue
            planned = None
            if item.is_task and verb != "help":
                # Planned before the 👀 and the tracking comment (paced writes): the runs can start while they wait.
                planned = await triggers.plan(
                    event,
                    site,
                    seq=seq,
                    source=carrier.source,
                    task=verb,
                    agents=agents,
                    attempts=attempts,
                    sender=sender.login,
                    instructions=item.instructions,
                    reason=f"/agent {verb} by @{sender.login}",
                )
            if not reacted:
                await carrier.acknowledge(github, site)
                reacted = True
            if verb == "help":
                replies.append(f"{messages.HELP_INTRO}\n\n{help_table(task_descriptions(config))}")
            elif planned is not None:
                await triggers.ensure_tracking_comment(site, planned)
            else:
                await self.verbs.handler_for(verb)(
                    CommandContext(
                        services=services,
                        event=event,
                        command=item,
                        config=config,
                        site=site,
                        sender=sender.login,
                        sender_permission=decision.held or "none",
                        comment_id=carrier.context_comment_id,
                        seq=seq,
                    )
                )
        if not replies:
            return
        body = "\n\n".join(dict.fromkeys(replies))
        if show_help and not any(reply.startswith(messages.HELP_INTRO) for reply in replies):
            body += "\n\n" + messages.HELP_AFTER_ERRORS.format(table=help_table(task_descriptions(config)))
        await post_reply(github, event, site, body)


def router(verbs: CommandRouter) -> Router[Features]:
    """The events that carry `/agent` lines (comments, review comments, review bodies), with `verbs` routing the
    control verbs."""
    commands = _Commands(verbs)
    events: Router[Features] = Router()
    events.on("issue_comment.created", "issue_comment.edited")(commands.issue_comment_with_commands)
    events.on("pull_request_review_comment.created")(commands.review_comment_with_commands)
    events.on("pull_request_review.submitted")(commands.review_with_commands)
    return events
