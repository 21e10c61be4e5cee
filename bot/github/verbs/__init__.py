"""The verbs of `GitHubVerbs` over `GitHubTransport`, one mixin per kind of resource; `GitHubGateway` has them all."""

from bot.github.verbs.actions import ActionsVerbs
from bot.github.verbs.app import AppVerbs
from bot.github.verbs.issues import IssueVerbs
from bot.github.verbs.pulls import PullVerbs
from bot.github.verbs.repos import RepoVerbs

__all__ = ["ActionsVerbs", "AppVerbs", "IssueVerbs", "PullVerbs", "RepoVerbs"]
