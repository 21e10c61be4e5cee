"""Everything Kickoff says to GitHub goes through here: `GitHubGateway` (for real) or a `GitHubAPI` fake.

`protocol` is what decision code may ask (`GitHubVerbs`), `repo` the same verbs bound to one repository
(`github.for_repo(...)`), `transport` how requests reach GitHub, `verbs` how each verb is made of requests.
"""

from bot.github.auth import InstallationToken, TokenScope
from bot.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from bot.github.gateway import GitHubGateway
from bot.github.models import (
    PERMISSIONS,
    AppIdentity,
    CheckRunAction,
    CheckRunInfo,
    FileContent,
    GitHubUser,
    HookDelivery,
    Issue,
    IssueComment,
    Permission,
    PullRequestInfo,
    Reaction,
    Repository,
    ReviewComment,
    WorkflowRun,
    permission_at_least,
)
from bot.github.protocol import GitHubAPI, GitHubVerbs
from bot.github.repo import RepoGateway

__all__ = [
    "PERMISSIONS",
    "AppIdentity",
    "CheckRunAction",
    "CheckRunInfo",
    "Conflict",
    "FileContent",
    "GitHubAPI",
    "GitHubError",
    "GitHubGateway",
    "GitHubUnavailable",
    "GitHubUser",
    "GitHubVerbs",
    "HookDelivery",
    "InstallationToken",
    "Issue",
    "IssueComment",
    "NotFound",
    "Permission",
    "PermissionDenied",
    "PullRequestInfo",
    "RateLimited",
    "Reaction",
    "RepoGateway",
    "Repository",
    "ReviewComment",
    "TokenScope",
    "Unauthorized",
    "ValidationFailed",
    "WorkflowRun",
    "permission_at_least",
]
