"""Helpers for the gateway tests: the App's constants, a fake clock, a fake token endpoint, recorded exchanges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import respx

APP_ID = 424242
INSTALLATION_ID = 7001
BASE_URL = "https://api.github.com"
RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "recorded"


@dataclass(frozen=True)
class AppKey:
    private_pem: str
    public_pem: str


@dataclass
class FakeTime:
    """Wall and monotonic clocks that move only when the code under test sleeps (or a test advances them)."""

    wall: datetime = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    mono: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@dataclass
class TokenMint:
    """A respx side effect for `POST /app/installations/{id}/access_tokens` handing out numbered tokens."""

    clock: FakeTime
    lifetime: timedelta = timedelta(hours=1)
    prefix: str = "ghs_test"
    issued: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = f"{self.prefix}{len(self.issued) + 1:04d}x" + "Q" * 20
        self.issued.append(token)
        self.bodies.append(json.loads(request.content) if request.content else None)
        self.authorizations.append(request.headers["authorization"])
        expires = (self.clock.now() + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        return httpx.Response(201, json={"token": token, "expires_at": expires, "permissions": {"issues": "write"}})


def mount_mint(
    router: respx.MockRouter,
    clock: FakeTime,
    *,
    installation_id: int = INSTALLATION_ID,
    base_url: str = BASE_URL,
    **kwargs: Any,
) -> TokenMint:
    mint = TokenMint(clock, **kwargs)
    router.post(f"{base_url}/app/installations/{installation_id}/access_tokens").mock(side_effect=mint)
    return mint


def credential(request: httpx.Request) -> str:
    """The credential of a request's Authorization header (`token X` or `Bearer X`)."""
    return request.headers["authorization"].partition(" ")[2]


def load_recorded(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((RECORDED / name).read_text())
    return data


def recorded_headers(entry: dict[str, Any]) -> dict[str, str]:
    """A recorded exchange's response headers, minus those httpx recomputes for the replayed body."""
    skip = {"content-length", "connection", "transfer-encoding", "content-encoding"}
    return {k: str(v) for k, v in entry["headers"].items() if k.lower() not in skip}
