"""Where a trigger happened: the issue or pull request a delivery is about, and the installation that can act."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.events import InstallationRef
from bot.events import Repository as RepositoryModel
from bot.routing import Event

log = logging.getLogger(__name__)


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
