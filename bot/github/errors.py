"""The few exceptions the gateway raises; githubkit's and httpx's never leave `bot.github`.

Messages carry the method, the path, the status and GitHub's own message, never a header, a token or the key.
"""

from __future__ import annotations

from typing import Any


class GitHubError(Exception):
    """A GitHub request failed. `status` is None when no response arrived (network failure)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        documentation_url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.documentation_url = documentation_url
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{where}{status}{self.message}"


class NotFound(GitHubError):
    """404 (or 410 Gone): the thing does not exist, or the installation cannot see it."""


class PermissionDenied(GitHubError):
    """403 that is not a rate limit: the App lacks a permission or the resource is protected."""


class Unauthorized(GitHubError):
    """401 even after minting a fresh token: wrong App id or key, revoked installation, or clock skew."""


class Conflict(GitHubError):
    """409: e.g. a merge conflict, or an empty repository."""


class ValidationFailed(GitHubError):
    """422: GitHub rejected the request body; `errors` is GitHub's list, as sent."""

    def __init__(self, message: str, *, errors: list[Any] | None = None, **kwargs: Any) -> None:
        self.errors: list[Any] = list(errors or [])
        details = "; ".join(_describe_validation_error(e) for e in self.errors)
        super().__init__(f"{message} ({details})" if details else message, **kwargs)
        self.message = message


class RateLimited(GitHubError):
    """Still rate limited after the retries, or told to wait longer than the gateway waits in-line."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class GitHubUnavailable(GitHubError):
    """5xx, timeouts or connection failures that outlasted the retries."""


def _describe_validation_error(error: Any) -> str:
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return str(error["message"])
        parts = [str(error[k]) for k in ("resource", "field", "code") if error.get(k)]
        return " ".join(parts)
    return str(error)


def error_for_status(
    status: int,
    message: str,
    *,
    errors: list[Any] | None = None,
    method: str | None = None,
    path: str | None = None,
    documentation_url: str | None = None,
    request_id: str | None = None,
) -> GitHubError:
    """Our exception for a final (non-retried) error status."""
    common: dict[str, Any] = {
        "status": status,
        "method": method,
        "path": path,
        "documentation_url": documentation_url,
        "request_id": request_id,
    }
    if status == 422:
        return ValidationFailed(message, errors=errors, **common)
    kind: type[GitHubError] = {
        401: Unauthorized,
        403: PermissionDenied,
        404: NotFound,
        410: NotFound,
        409: Conflict,
        429: RateLimited,
    }.get(status, GitHubUnavailable if status >= 500 else GitHubError)
    return kind(message, **common)
