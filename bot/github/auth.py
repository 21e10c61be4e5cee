"""Installation tokens: what a token is, which scope it was minted for, and a cache that refreshes early."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

# GitHub tokens last an hour; hand one out only while it has more than this left, so a request (or a run's clone)
# started with it does not outlive it.
REFRESH_MARGIN = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token. `token` is kept out of repr; never log or persist it."""

    token: str = field(repr=False)
    expires_at: datetime
    permissions: Mapping[str, str] = field(default_factory=dict)
    repositories: tuple[str, ...] = ()

    def fresh(self, now: datetime, margin: timedelta = REFRESH_MARGIN) -> bool:
        return self.expires_at - now > margin


@dataclass(frozen=True)
class TokenScope:
    """What a token is minted for; the empty scope is everything the installation was granted."""

    repositories: tuple[str, ...] = ()
    permissions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, repositories: Sequence[str] = (), permissions: Mapping[str, str] | None = None) -> TokenScope:
        for name in repositories:
            if not name or "/" in name:
                raise ValueError(f"repository scopes are bare names (without owner/), got {name!r}")
        return cls(tuple(sorted(set(repositories))), tuple(sorted((permissions or {}).items())))

    def request_body(self) -> dict[str, object] | None:
        """The JSON body of `POST /app/installations/{id}/access_tokens` for this scope."""
        body: dict[str, object] = {}
        if self.repositories:
            body["repositories"] = list(self.repositories)
        if self.permissions:
            body["permissions"] = dict(self.permissions)
        return body or None


class _RepoName(BaseModel):
    name: str


class _TokenResponse(BaseModel):
    token: str
    expires_at: datetime
    permissions: dict[str, str] = {}
    repositories: list[_RepoName] = []


def parse_token_response(data: object) -> InstallationToken:
    """Read GitHub's answer to a token request; nothing is assumed about the token's length or format."""
    try:
        parsed = _TokenResponse.model_validate(data)
    except ValidationError:
        # The pydantic message would quote the input, token included.
        raise ValueError("the access-token response lacks a token or a valid expires_at") from None
    if not parsed.token:
        raise ValueError("the access-token response has an empty token")
    expires_at = parsed.expires_at if parsed.expires_at.tzinfo else parsed.expires_at.replace(tzinfo=UTC)
    return InstallationToken(
        token=parsed.token,
        expires_at=expires_at,
        permissions=dict(parsed.permissions),
        repositories=tuple(r.name for r in parsed.repositories),
    )


Mint = Callable[[int, TokenScope], Awaitable[InstallationToken]]


class TokenCache:
    """Installation tokens per (installation, scope): minted once, reused, re-minted before they expire.

    Concurrent callers for the same key wait for one mint instead of minting one each.
    """

    def __init__(
        self,
        mint: Mint,
        *,
        now: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._mint = mint
        self._now = now
        self._margin = refresh_margin
        self._tokens: dict[tuple[int, TokenScope], InstallationToken] = {}
        self._locks: dict[tuple[int, TokenScope], asyncio.Lock] = {}

    async def get(self, installation_id: int, scope: TokenScope = TokenScope()) -> InstallationToken:
        key = (installation_id, scope)
        token = self._tokens.get(key)
        if token is not None and token.fresh(self._now(), self._margin):
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._tokens.get(key)
            if token is not None and token.fresh(self._now(), self._margin):
                return token
            token = await self._mint(installation_id, scope)
            self._tokens[key] = token
            return token

    def invalidate(self, installation_id: int, scope: TokenScope, token: InstallationToken) -> None:
        """Forget `token` (GitHub rejected it), unless another caller already replaced it."""
        key = (installation_id, scope)
        if self._tokens.get(key) is token:
            del self._tokens[key]

    def forget_installation(self, installation_id: int) -> None:
        """Drop every token of an installation (it was deleted or suspended)."""
        for key in [k for k in self._tokens if k[0] == installation_id]:
            del self._tokens[key]
