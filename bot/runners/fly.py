"""The `fly` backend: one Fly Machine per run, through the Machines API (`https://api.machines.dev/v1`).

Each machine runs the runner image with `kickoff run-agent --spec /kickoff/spec.json`: the spec is a file in the
machine's config (`files`, base64), the two credentials are in its `env`, and the agents' API keys are the Fly app's
own secrets, which Fly puts in every machine's environment. `auto_destroy: true` and restart policy `no` make it a
one-shot: it is destroyed once the program exits. The watchdog follows it with the `wait` endpoint (a long poll of
at most 60 s), and a cancel or Kickoff's deadline stops and then destroys it.

The machine config (and so the env holding the run's two credentials) is readable with the app's API token, that
is by the operators who already hold Kickoff's own secrets; the git token is scoped to one repository, expires
within the hour and is revoked when the run ends. Fly limits the Machines API to about one request per second per
action (with a small burst): every call goes through `RateLimiter`, per action, with an injectable clock.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx

from bot.runners.watchdog import RemoteRunner, RemoteStatus
from bot.runs.backend import RunnerError
from bot.runspec import RunSpec

log = logging.getLogger(__name__)

API_URL: Final = "https://api.machines.dev"
SPEC_PATH: Final = "/kickoff/spec.json"
MANAGED_KEY: Final = "kickoff_managed"
RUN_KEY: Final = "kickoff_run_id"
MAX_WAIT: Final = 60  # the wait endpoint's own maximum, in seconds
MAX_429_RETRIES: Final = 3


class RateLimiter:
    """A token bucket per action: `rate` requests a second, bursts of `burst`. Clock and sleep are injectable."""

    def __init__(self, rate: float = 1.0, burst: int = 3, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, tuple[float, float]] = {}  # action → (tokens, at)
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, action: str) -> None:
        """Wait until a request of `action` may go."""
        lock = self._locks.setdefault(action, asyncio.Lock())
        async with lock:
            while True:
                now = self._clock()
                tokens, at = self._buckets.get(action, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + (now - at) * self.rate)
                if tokens >= 1.0:
                    self._buckets[action] = (tokens - 1.0, now)
                    return
                self._buckets[action] = (tokens, now)
                await self._sleep((1.0 - tokens) / self.rate)


def parse_ref(ref: str) -> tuple[str, str] | None:
    """`fly:app/machine id` → (app, machine id)."""
    if not ref.startswith("fly:"):
        return None
    app, _, machine = ref[4:].partition("/")
    return (app, machine) if app and machine else None


def exit_of(machine: Mapping[str, Any]) -> int | None:
    """The exit code of the machine's latest `exit` event, if Fly still has it."""
    events = machine.get("events")
    if not isinstance(events, list):
        return None
    exits = [e for e in events if isinstance(e, dict) and e.get("type") == "exit"]
    if not exits:
        return None
    latest = max(exits, key=lambda e: e.get("timestamp") or 0)
    request = latest.get("request")
    exit_event = request.get("exit_event") if isinstance(request, dict) else None
    code = exit_event.get("exit_code") if isinstance(exit_event, dict) else None
    return code if isinstance(code, int) else None


class FlyRunner(RemoteRunner):
    """Runs each runner as a Fly Machine of `app` from `image`."""

    name = "fly"
    prefix = "fly:"
    long_polls = True

    def __init__(
        self,
        *,
        app: str,
        token: str,
        image: str,
        region: str | None = None,
        cpu_kind: str = "shared",
        cpus: int = 2,
        memory_mb: int = 4096,
        api_url: str = API_URL,
        poll_seconds: float = MAX_WAIT,
        grace_seconds: float = 60.0,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(poll_seconds=min(poll_seconds, MAX_WAIT), grace_seconds=grace_seconds, clock=clock)
        self.app = app
        self.image = image
        self.region = region
        self.guest = {"cpu_kind": cpu_kind, "cpus": cpus, "memory_mb": memory_mb}
        self.limiter = limiter or RateLimiter()
        self._http = httpx.AsyncClient(
            base_url=f"{api_url.rstrip('/')}/v1/apps/{app}",
            headers={"Authorization": f"Bearer {token}", "User-Agent": "kickoff-bot"},
            timeout=httpx.Timeout(30.0, read=MAX_WAIT + 15.0),
            transport=transport,
        )

    async def _api(self, action: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One Machines API request, paced per action; 429 is retried after Fly's `Retry-After`."""
        for attempt in range(MAX_429_RETRIES + 1):
            await self.limiter.acquire(action)
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise RunnerError(f"the Fly Machines API is unreachable ({type(exc).__name__})") from None
            if response.status_code != 429 or attempt == MAX_429_RETRIES:
                return response
            try:
                delay = float(response.headers.get("retry-after", "1"))
            except ValueError:
                delay = 1.0
            await asyncio.sleep(min(max(delay, 0.0), 10.0))
        raise AssertionError("unreachable")

    @staticmethod
    def _failure(response: httpx.Response, what: str) -> RunnerError:
        try:
            body = response.json()
            message = body.get("error") if isinstance(body, dict) else None
        except ValueError:
            message = None
        return RunnerError(f"Fly refused to {what} ({response.status_code}{': ' + message if message else ''})")

    def machine_config(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> dict[str, Any]:
        """The body of `POST /v1/apps/{app}/machines` for one run."""
        body: dict[str, Any] = {
            "name": f"kickoff-run-{spec.run_id}",
            "config": {
                "image": self.image,
                "init": {"cmd": ["kickoff", "run-agent", "--spec", SPEC_PATH]},
                "env": {**secrets, "KICKOFF_RUN_ID": str(spec.run_id)},
                "files": [{"guest_path": SPEC_PATH,
                           "raw_value": base64.b64encode(spec.model_dump_json().encode()).decode()}],
                "guest": dict(self.guest),
                "auto_destroy": True,
                "restart": {"policy": "no"},
                "metadata": {MANAGED_KEY: "true", RUN_KEY: str(spec.run_id)},
            },
        }
        if self.region:
            body["region"] = self.region
        return body

    async def _launch(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> str:
        response = await self._api("create", "POST", "/machines", json=self.machine_config(spec, secrets, deadline))
        if response.status_code not in (200, 201):
            raise self._failure(response, "create a machine")
        machine_id = response.json().get("id")
        if not isinstance(machine_id, str) or not machine_id:
            raise RunnerError("Fly created a machine but did not say its id")
        return f"fly:{self.app}/{machine_id}"

    async def _observe(self, ref: str, within: float) -> RemoteStatus:
        parsed = parse_ref(ref)
        if parsed is None:
            return RemoteStatus("gone")
        machine_id = parsed[1]
        seconds = int(min(MAX_WAIT, within))
        if seconds >= 1:
            waited = await self._api("wait", "GET", f"/machines/{machine_id}/wait",
                                      params={"state": "stopped", "timeout": seconds})
            if waited.status_code == 404:
                return RemoteStatus("gone")
            if waited.status_code == 408:
                return RemoteStatus("running")
        response = await self._api("get", "GET", f"/machines/{machine_id}")
        if response.status_code == 404:
            return RemoteStatus("gone")
        if response.status_code != 200:
            raise self._failure(response, "show a machine")
        machine = response.json()
        state = machine.get("state")
        if state in ("stopped", "destroyed", "destroying", "failed"):
            code = exit_of(machine)
            return RemoteStatus("finished", code, detail=f"the machine is {state} (exit {code})")
        return RemoteStatus("pending" if state in ("created", "starting") else "running")

    async def _stop(self, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed is None:
            return
        response = await self._api("stop", "POST", f"/machines/{parsed[1]}/stop")
        if response.status_code not in (200, 404):
            raise self._failure(response, "stop a machine")

    async def _remove(self, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed is None:
            return
        response = await self._api("delete", "DELETE", f"/machines/{parsed[1]}", params={"force": "true"})
        if response.status_code not in (200, 404):
            raise self._failure(response, "destroy a machine")

    async def _list(self) -> dict[int, str]:
        response = await self._api("list", "GET", "/machines", params={f"metadata.{MANAGED_KEY}": "true"})
        if response.status_code != 200:
            raise self._failure(response, "list machines")
        found: dict[int, str] = {}
        for machine in response.json():
            config = machine.get("config") or {}
            metadata = config.get("metadata") or {}
            run_id = str(metadata.get(RUN_KEY))
            if metadata.get(MANAGED_KEY) != "true" or not run_id.isdigit():
                continue
            if machine.get("state") in ("destroyed", "destroying"):
                continue
            found[int(run_id)] = f"fly:{self.app}/{machine['id']}"
        return found

    async def _close(self) -> None:
        await self._http.aclose()
