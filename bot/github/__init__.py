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
    FileContent,
    IssueComment,
    Permission,
    Reaction,
    Repository,
    permission_at_least,
)

__all__ = [
    "PERMISSIONS",
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
    "RateLimited",
    "Reaction",
    "Repository",
    "TokenScope",
    "Unauthorized",
    "ValidationFailed",
    "permission_at_least",
]
