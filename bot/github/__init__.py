"""Everything Kickoff says to GitHub goes through here: `GitHubGateway` (for real) or a `GitHubAPI` fake."""

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
from bot.github.gateway import GitHubAPI, GitHubGateway
from bot.github.models import (
    PERMISSIONS,
    CheckRunAction,
    CheckRunInfo,
    FileContent,
    IssueComment,
    Permission,
    PullRequestInfo,
    Reaction,
    Repository,
    ReviewComment,
    WorkflowRun,
    permission_at_least,
)

__all__ = [
    "PERMISSIONS",
    "CheckRunAction",
    "CheckRunInfo",
    "Conflict",
    "FileContent",
    "GitHubAPI",
    "GitHubError",
    "GitHubGateway",
    "GitHubUnavailable",
    "InstallationToken",
    "IssueComment",
    "NotFound",
    "Permission",
    "PermissionDenied",
    "PullRequestInfo",
    "RateLimited",
    "Reaction",
    "Repository",
    "ReviewComment",
    "TokenScope",
    "Unauthorized",
    "ValidationFailed",
    "WorkflowRun",
    "permission_at_least",
]
