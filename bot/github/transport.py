"""How Kickoff reaches GitHub: App JWT, installation tokens, one shared connection pool, retries, pacing, errors.

`GitHubTransport` knows nothing of issues or pull requests; the verbs (`bot.github.verbs`) are written over its
`request`/`paginate`/`_fetch`, and `bot.github.gateway.GitHubGateway` puts the two together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, overload
from urllib.parse import quote

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.auth import BaseAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.config import get_config
from githubkit.exception import RequestError, RequestFailed, RequestTimeout
from githubkit.response import Response
from pydantic import TypeAdapter, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bot import __version__
from bot.github.auth import InstallationToken, TokenCache, TokenScope, parse_token_response, utcnow
from bot.github.errors import (
    GitHubError,
    GitHubUnavailable,
    RateLimited,
    Unauthorized,
    error_for_status,
)
from bot.github.pacing import WRITE_LIMITS, Sleep, WritePacer
from bot.logs import register_secret

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Mapping[str, str | int | float | bool]

DEFAULT_BASE_URL = "https://api.github.com"
# Pinned rather than githubkit's newest (2026-03-10), which GitHub Enterprise Server does not know.
API_VERSION = "2022-11-28"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# GitHub: when a secondary limit names no wait, "wait for at least one minute before retrying".
SECONDARY_LIMIT_WAIT = 60.0
# The ETag store (`ConditionalCache`): responses kept per installation, installations kept, largest body kept.
ETAG_ENTRIES = 512
ETAG_INSTALLATIONS = 256
ETAG_MAX_BODY = 512 * 1024
ETAG_MAX_BYTES = 64 * 1024 * 1024
# Below this share of its hourly limit an installation's budget is low: non-urgent reads (the queue sweep) wait.
LOW_BUDGET_SHARE = 0.10


class _Client(GitHub[Any]):
    """githubkit, minus its rate-limit parsing: the gateway classifies 403/429 itself, and githubkit's parser
    raises ValueError on an HTTP-date `Retry-After` or an out-of-range `x-ratelimit-reset`."""

    def _check_rate_limit(self, response: Response[Any]) -> None:
        return None


class _SharedTransport(httpx.AsyncBaseTransport):
    """Lets every short-lived githubkit client use the gateway's one connection pool without closing it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class ConditionalCache:
    """The gateway's ETag store: the last `200` of each GET (with its `ETag`), per installation (the App's JWT is
    `None`), so the next GET of the same URL asks `If-None-Match` and a `304 Not Modified` — which GitHub does not
    count against the rate limit — is answered from here. Bounded (least recently used first): `entries` URLs per
    installation, `installations` installations, `max_bytes` of bodies in all, none over `max_body`. One
    installation's responses never answer another's requests."""

    def __init__(
        self,
        *,
        entries: int = ETAG_ENTRIES,
        installations: int = ETAG_INSTALLATIONS,
        max_body: int = ETAG_MAX_BODY,
        max_bytes: int = ETAG_MAX_BYTES,
    ) -> None:
        self._entries = entries
        self._installations = installations
        self._max_body = max_body
        self._max_bytes = max_bytes
        self._held: collections.OrderedDict[int | None, collections.OrderedDict[str, httpx.Response]] = (
            collections.OrderedDict()
        )
        self.bytes = 0
        self.hits = 0

    @staticmethod
    def key(path: str, params: Params | None) -> str:
        return str(httpx.URL(path, params=dict(params) if params else None))

    def get(self, installation_id: int | None, key: str) -> httpx.Response | None:
        bucket = self._held.get(installation_id)
        if bucket is None or key not in bucket:
            return None
        self._held.move_to_end(installation_id)
        bucket.move_to_end(key)
        return bucket[key]

    def put(self, installation_id: int | None, key: str, response: httpx.Response) -> None:
        self.discard(installation_id, key)
        if "etag" not in response.headers or len(response.content) > self._max_body:
            return
        bucket = self._held.setdefault(installation_id, collections.OrderedDict())
        self._held.move_to_end(installation_id)
        bucket[key] = response
        self.bytes += len(response.content)
        while len(bucket) > self._entries:
            self._evict(bucket)
        while len(self._held) > self._installations:
            self.forget_installation(next(iter(self._held)))
        while self.bytes > self._max_bytes and self._held:
            oldest = next(iter(self._held))
            self._evict(self._held[oldest])
            if not self._held[oldest]:
                del self._held[oldest]

    def _evict(self, bucket: collections.OrderedDict[str, httpx.Response]) -> None:
        _, dropped = bucket.popitem(last=False)
        self.bytes -= len(dropped.content)

    def discard(self, installation_id: int | None, key: str) -> None:
        bucket = self._held.get(installation_id)
        dropped = bucket.pop(key, None) if bucket is not None else None
        if dropped is not None:
            self.bytes -= len(dropped.content)

    def forget_path(self, installation_id: int | None, path: str) -> int:
        """Drop the installation's stored responses for `path` (any query, names compared case-insensitively)."""
        bucket = self._held.get(installation_id)
        if bucket is None:
            return 0
        wanted = path.rstrip("/").lower()
        stale = [key for key in bucket if httpx.URL(key).path.rstrip("/").lower().endswith(wanted)]
        for key in stale:
            self.discard(installation_id, key)
        return len(stale)

    def forget_installation(self, installation_id: int | None) -> None:
        bucket = self._held.pop(installation_id, None)
        if bucket is not None:
            self.bytes -= sum(len(response.content) for response in bucket.values())

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._held.values())


class _Transient(Exception):
    """A failure worth retrying; `error` is what the caller gets when the retries run out."""

    def __init__(self, error: GitHubError, delay: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class _TokenRejected(Exception):
    def __init__(self, error: Unauthorized) -> None:
        super().__init__(str(error))
        self.error = error


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def seg(value: str | int) -> str:
    """One URL path segment, escaped (owner, repo, label and user names come from payloads)."""
    return quote(str(value), safe="")


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date); `Retry-After: 0` means now, not a minute."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


class GitHubTransport:
    """GitHub through githubkit for one App: every request as the App (JWT) or as an installation.

    `sleep`, `now` (wall clock, for token expiry and `x-ratelimit-reset`) and `monotonic` (for pacing) are
    injectable so tests never wait. GETs are conditional (`ConditionalCache`). What GitHub's rate limit saw is kept
    for `/metrics` and the dashboard: `rate_limit_remaining` and `rate_limit_limit` (the last `x-ratelimit-remaining`
    and `x-ratelimit-limit` per installation), `request_counts` by (method, status) and `endpoint_counts` by
    (method, endpoint, status), where an endpoint is its route template (`/repos/{owner}/{repo}/pulls/{number}`).
    """

    def __init__(
        self,
        app_id: int,
        private_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_retry_wait: float = 60.0,
        write_limits: Sequence[tuple[int, float]] = WRITE_LIMITS,
        user_agent: str = f"kickoff-bot/{__version__}",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.app_id = app_id
        self.base_url = base_url.rstrip("/")
        self.rate_limit_remaining: dict[int, int] = {}
        self.rate_limit_limit: dict[int, int] = {}
        self.request_counts: collections.Counter[tuple[str, int]] = collections.Counter()  # (method, status)
        self.endpoint_counts: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.conditional = ConditionalCache()
        self._sleep = sleep
        self._now = now
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._owns_transport = transport is None
        self._transport = transport or httpx.AsyncHTTPTransport(retries=0)
        self._config = get_config(
            base_url=self.base_url,
            user_agent=user_agent,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            async_transport=_SharedTransport(self._transport),
            cache_strategy=MemCacheStrategy(),  # this gateway's own, never githubkit's process-wide one
            http_cache=False,  # keep no response bodies; a sandbox or fake server then needs no ETag support
            auto_retry=False,  # retried here: githubkit would sleep 60 s on `Retry-After: 0`
        )
        self._app = self._client(AppAuthStrategy(app_id, private_key))
        self._tokens = TokenCache(self._mint, now=now)
        self._pacer = WritePacer(write_limits, clock=monotonic, sleep=sleep)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        app_id, private_key = settings.require_app_credentials()
        return cls(app_id, private_key, base_url=settings.github_api_url, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app_id={self.app_id}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def forget_installation(self, installation_id: int) -> None:
        """Drop an installation's cached tokens and responses (it was deleted or suspended)."""
        self._tokens.forget_installation(installation_id)
        self.conditional.forget_installation(installation_id)
        self.rate_limit_remaining.pop(installation_id, None)
        self.rate_limit_limit.pop(installation_id, None)

    def forget_response(self, installation_id: int, path: str) -> None:
        """Drop the stored copy of a GET's answer (`/repos/o/r/contents/.github/kickoff.yml`): a push changed it, so
        the next read is a plain GET."""
        self.conditional.forget_path(installation_id, path)

    def budget_low(self, installation_id: int, share: float = LOW_BUDGET_SHARE) -> bool:
        """Whether the installation's last known remaining rate limit is below `share` of its limit (False while
        GitHub has not said)."""
        remaining = self.rate_limit_remaining.get(installation_id)
        limit = self.rate_limit_limit.get(installation_id)
        if remaining is None or not limit:
            return False
        return remaining < share * limit

    # The raw REST call the verbs are written with; features never see it (GitHubAPI is the verbs alone).

    @overload
    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: type[T],
        paced: bool = True,
    ) -> T: ...

    @overload
    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: None = None,
        paced: bool = True,
    ) -> Any: ...

    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: type[T] | None = None,
        paced: bool = True,
    ) -> Any:
        """Any REST call: as the installation, or as the App when `installation_id` is None.

        Returns the JSON body (None for 204) validated as `model` when given. An installation's writes wait for the
        write pacer unless `paced=False` (Kickoff's own work — dispatching and cancelling its runners' workflows —
        which creates no content and must not queue behind comments).
        """
        response, data = await self._fetch(installation_id, method, path, params=params, json=json, paced=paced)
        return data if model is None else self._parse(model, data, response)

    async def paginate(
        self,
        installation_id: int | None,
        path: str,
        *,
        model: type[T],
        params: Params | None = None,
        items_key: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[T]:
        url = path
        query: Params | None = {**(params or {}), "per_page": per_page}
        while True:
            response, data = await self._fetch(installation_id, "GET", url, params=query)
            items = data.get(items_key) if items_key is not None and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise GitHubError(
                    "expected a list in the response", status=response.status_code, method="GET", path=_path(response)
                )
            for item in items:
                yield self._parse(model, item, response)
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            url, query = self._same_origin(next_url), None

    # Plumbing.

    def _client(self, auth: BaseAuthStrategy) -> _Client:
        return _Client(auth, config=self._config)

    def _same_origin(self, link: str) -> str:
        """Follow a pagination link only to where the token is meant to go."""
        url, base = httpx.URL(link), self._config.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.path.startswith(
            base.path
        ):
            raise GitHubError(f"refusing to follow a pagination link to another origin ({url.host})")
        return link

    async def _mint(self, installation_id: int, scope: TokenScope) -> InstallationToken:
        url = f"/app/installations/{installation_id}/access_tokens"
        response = await self._call(None, "POST", url, params=None, json=scope.request_body())
        try:
            token = parse_token_response(response.json())
        except ValueError as exc:
            raise GitHubError(str(exc), status=response.status_code, method="POST", path=url) from None
        register_secret(token.token)  # redacted from every later log line, wherever it turns up
        log.info("minted an installation token for installation %s (expires %s)", installation_id, token.expires_at)
        return token

    async def _fetch(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        paced: bool = True,
    ) -> tuple[httpx.Response, Any]:
        response = await self._call(installation_id, method, path, params=params, json=json, paced=paced)
        if response.status_code == 204 or not response.content:
            return response, None
        try:
            return response, response.json()
        except ValueError:
            raise GitHubError(
                "GitHub answered with a body that is not JSON",
                status=response.status_code,
                method=method.upper(),
                path=_path(response),
            ) from None

    def _parse(self, model: type[T], data: Any, response: httpx.Response) -> T:
        try:
            parsed: T = _adapter(model).validate_python(data)
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()[:5])
            raise GitHubError(
                f"GitHub answered with an unexpected shape (at {where})",
                status=response.status_code,
                method=response.request.method,
                path=_path(response),
            ) from None
        return parsed

    async def _call(
        self, installation_id: int | None, method: str, path: str, *, params: Params | None, json: Any,
        paced: bool = True,
    ) -> httpx.Response:
        """One logical request: as the App (JWT) or as an installation, re-minting once when a token is refused."""
        if installation_id is None:
            return await self._send(self._app, None, method, path, params=params, json=json)
        scope = TokenScope()
        refreshed = False
        while True:
            token = await self._tokens.get(installation_id, scope)
            client = self._client(TokenAuthStrategy(token.token))
            try:
                return await self._send(client, installation_id, method, path, params=params, json=json, paced=paced)
            except _TokenRejected as rejected:
                self._tokens.invalidate(installation_id, scope, token)
                if refreshed:
                    raise rejected.error from None
                log.warning("GitHub refused the token of installation %s; minting a new one", installation_id)
                refreshed = True

    async def _send(
        self,
        client: _Client,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None,
        json: Any,
        paced: bool = True,
    ) -> httpx.Response:
        method = method.upper()
        paced = paced and installation_id is not None and method in WRITE_METHODS
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._retry_wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if paced and installation_id is not None:
                        await self._pacer.acquire(installation_id)
                    response = await self._attempt(client, installation_id, method, path, params, json)
        except _Transient as transient:
            raise transient.error from transient.__cause__
        return response

    async def _attempt(
        self,
        client: _Client,
        installation_id: int | None,
        method: str,
        path: str,
        params: Params | None,
        json: Any,
    ) -> httpx.Response:
        where: dict[str, Any] = {"method": method, "path": httpx.URL(path).path}
        headers = {"X-GitHub-Api-Version": API_VERSION}
        cache_key = ConditionalCache.key(path, params) if method == "GET" else None
        cached = self.conditional.get(installation_id, cache_key) if cache_key is not None else None
        if cached is not None:
            headers["If-None-Match"] = cached.headers["etag"]
        try:
            response = (
                await client.arequest(method, path, params=params, json=json, headers=headers)
            ).raw_response
        except RequestFailed as exc:
            response = exc.response.raw_response
        except RequestTimeout as exc:
            raise _Transient(GitHubUnavailable(f"timed out ({type(exc.exc).__name__})", **where), None) from exc.exc
        except RequestError as exc:
            inner = exc.exc
            if isinstance(inner, httpx.TransportError):
                error = GitHubUnavailable(f"network error ({type(inner).__name__})", **where)
                raise _Transient(error, None) from inner
            raise GitHubError(f"request could not be sent ({type(inner).__name__})", **where) from inner
        self._observe(installation_id, response)
        if cache_key is not None:
            if response.status_code == 304 and cached is not None:
                self.conditional.hits += 1
                return cached  # unchanged: the body GitHub sent last time, at no cost to the rate limit
            if response.status_code == 200:
                self.conditional.put(installation_id, cache_key, response)
            else:
                self.conditional.discard(installation_id, cache_key)
        if response.status_code < 400:
            return response
        raise self._failure(installation_id, response)

    def _observe(self, installation_id: int | None, response: httpx.Response) -> None:
        method, status = response.request.method, response.status_code
        self.request_counts[(method, status)] += 1
        self.endpoint_counts[(method, endpoint_of(response.request.url.path, self._config.base_url.path), status)] += 1
        remaining = _int_header(response.headers, "x-ratelimit-remaining")
        if installation_id is not None and remaining is not None:
            self.rate_limit_remaining[installation_id] = remaining
            limit = _int_header(response.headers, "x-ratelimit-limit")
            if limit is not None:
                self.rate_limit_limit[installation_id] = limit

    def _failure(self, installation_id: int | None, response: httpx.Response) -> Exception:
        """Classify an error response: retry (`_Transient`), re-mint (`_TokenRejected`), or our final exception."""
        status, headers = response.status_code, response.headers
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        message = body.get("message")
        if not isinstance(message, str) or not message:
            message = response.reason_phrase or f"HTTP {status}"
        errors = body.get("errors")
        docs = body.get("documentation_url")
        common: dict[str, Any] = {
            "status": status,
            "method": response.request.method,
            "path": _path(response),
            "documentation_url": docs if isinstance(docs, str) else None,
            "request_id": headers.get("x-github-request-id"),
        }
        if status == 401 and installation_id is not None:
            return _TokenRejected(Unauthorized(message, **common))
        if status == 429 or (status == 403 and self._is_rate_limit(headers, message)):
            delay = self._rate_limit_delay(headers)
            limited = RateLimited(message, retry_after=delay, **common)
            # A wait longer than a worker should hold (a primary limit resets hourly) goes back to the caller.
            return limited if delay > self._max_retry_wait else _Transient(limited, delay)
        if status >= 500:
            asked = _retry_after(headers, self._now())
            unavailable = GitHubUnavailable(message, **common)
            return _Transient(unavailable, None if asked is None else min(asked, self._max_retry_wait))
        return error_for_status(message=message, errors=errors if isinstance(errors, list) else None, **common)

    @staticmethod
    def _is_rate_limit(headers: httpx.Headers, message: str) -> bool:
        # "abuse detection" is how older GitHub Enterprise Server versions word a secondary limit.
        text = message.lower()
        return (
            "rate limit" in text
            or "abuse detection" in text
            or "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
        )

    def _rate_limit_delay(self, headers: httpx.Headers) -> float:
        now = self._now()
        retry_after = _retry_after(headers, now)
        if retry_after is not None:
            return retry_after
        reset = _int_header(headers, "x-ratelimit-reset")
        if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            # One second past the reset, as octokit's throttling plugin does, for clock skew.
            return max(0.0, math.ceil(reset - now.timestamp())) + 1.0
        return SECONDARY_LIMIT_WAIT

    def _retry_wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Transient) and failure.delay is not None:
            return failure.delay
        return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (state.attempt_number - 1)))

    def _log_retry(self, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "GitHub %s; retrying in %.1f s (attempt %d of %d)",
            failure.error if isinstance(failure, _Transient) else failure,
            wait,
            state.attempt_number + 1,
            self._max_attempts,
        )


def _path(response: httpx.Response) -> str:
    return response.request.url.path


# What follows each of these path segments is a value, not a resource (`/pulls/12`, `/users/octocat`); a `#` marks a
# value that is a number (`/issues/comments/7`: `comments` is a resource there, not the number).
_VALUES: Final = {
    "repos": ("{owner}", "{repo}"),
    "users": ("{username}",),
    "orgs": ("{org}",),
    "installations": ("#{installation_id}",),
    "issues": ("#{number}",),
    "pulls": ("#{number}",),
    "comments": ("#{comment_id}",),
    "check-runs": ("#{check_run_id}",),
    "check-suites": ("#{check_suite_id}",),
    "runs": ("#{run_id}",),
    "jobs": ("#{job_id}",),
    "deliveries": ("#{delivery_id}",),
    "workflows": ("{workflow_id}",),
    "collaborators": ("{username}",),
    "labels": ("{name}",),
    "blobs": ("{sha}",),
    "commits": ("{ref}",),
}
# What follows each of these is a value that runs to the end of the path (it may hold slashes).
_TAIL: Final = {"contents": "{path}", "ref": "{ref}", "refs": "{ref}", "matching-refs": "{ref}",
                "branches": "{branch}", "compare": "{basehead}"}


def endpoint_of(path: str, base_path: str = "/") -> str:
    """A request path as its route template — `/repos/o/r/pulls/12/reviews` is `/repos/{owner}/{repo}/pulls/{number}/
    reviews` — so requests are counted by endpoint over a bounded set of labels. A segment is told a value from a
    resource's name by what precedes it, as GitHub's paths are built."""
    prefix = base_path.rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix):]
    parts = [p for p in path.split("/") if p]
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        out.append(part)
        i += 1
        if part in _TAIL and i < len(parts):
            out.append(_TAIL[part])
            break
        for name in _VALUES.get(part, ()):
            if i >= len(parts) or (name.startswith("#") and not parts[i].isdigit()):
                break
            out.append(name.removeprefix("#"))
            i += 1
    return "/" + "/".join(out)
