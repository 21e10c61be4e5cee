"""The one place Kickoff talks to GitHub: `GitHubGateway` is the transport (`bot.github.transport`: App auth,
installation tokens, retries, pacing, error mapping) with every verb (`bot.github.verbs`) on it.

Decision code types against `GitHubVerbs`/`GitHubAPI` (`bot.github.protocol`); `tests/fake_github.py` implements
them in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.github.protocol import GitHubAPI
from bot.github.repo import RepoGateway
from bot.github.verbs import ActionsVerbs, AppVerbs, IssueVerbs, PullVerbs, RepoVerbs

__all__ = ["GitHubAPI", "GitHubGateway"]


class GitHubGateway(RepoVerbs, IssueVerbs, PullVerbs, ActionsVerbs, AppVerbs):
    """GitHub through githubkit for one App: implements `GitHubAPI` (see `GitHubTransport` for the knobs)."""

    def for_repo(self, installation_id: int, full_name: str) -> RepoGateway:
        return RepoGateway.of(self, installation_id, full_name)


if TYPE_CHECKING:

    def _implements_the_protocol(gateway: GitHubGateway) -> GitHubAPI:
        return gateway
