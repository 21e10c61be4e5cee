"""Spec tickets: how a remote runner that Kickoff cannot hand a file to (a GitHub Actions job) gets its spec.

A `workflow_dispatch`'s inputs are visible to anyone who can read the repository's Actions tab, so they carry only
the run id and a ticket: 32 random bytes, stored as their sha256, good for one fetch of
`GET /api/runs/{run_id}/spec` (`Authorization: Bearer <ticket>`) within a short time. The answer is the spec (which
holds no secret) and, in a separate field, a fresh report secret for the run: the fetch rotates the run's
`secret_hash`, so the one secret that can report for the run is the one handed to whoever redeemed the ticket, over
TLS, once. Whoever sees the ticket later (in the Actions UI, in a log) holds nothing: it is spent, or expired, and
the report secret was never in the inputs. If someone else redeems it first, the real job's fetch fails and the run
fails visibly; it cannot be made to push anything, since pushing uses the job's own `GITHUB_TOKEN`.

Single use is one guarded UPDATE (`WHERE redeemed_at IS NULL`), in the same transaction as the secret's rotation,
so two concurrent fetches cannot both succeed, on SQLite or PostgreSQL, on one replica or several.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import CursorResult, ForeignKey, String, Text, delete, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.logs import register_secret
from bot.runspec import ENV_RUN_SECRET, RunSpec
from bot.services import Services
from bot.store.db import Store
from bot.store.lifecycle import ON_RUNNER
from bot.store.models import Base, Run, UTCDateTime, utcnow
from bot.store.runs import secret_hash

log = logging.getLogger(__name__)

router = APIRouter()

DEFAULT_TTL: Final = timedelta(minutes=30)


class SpecTicket(Base):
    """One run's spec, waiting to be fetched once with its ticket (only the ticket's sha256 is kept)."""

    __tablename__ = "spec_tickets"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True,
                                        autoincrement=False)
    ticket_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str | None] = mapped_column(Text)  # cleared once redeemed
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketRefused(Exception):
    """The ticket does not open this run's spec; `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Redeemed:
    spec: RunSpec
    report_secret: str


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


class TicketStore:
    """Issues and redeems spec tickets. `clock` is injectable (tests expire tickets without waiting)."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    async def issue(self, spec: RunSpec, *, ttl: timedelta = DEFAULT_TTL) -> str:
        """A new ticket for `spec`'s run; any earlier ticket of the run stops working."""
        ticket = secrets.token_urlsafe(32)
        register_secret(ticket, run_id=spec.run_id)
        now = self.clock()
        async with self.store.sessions.begin() as session:
            await session.execute(delete(SpecTicket).where(SpecTicket.run_id == spec.run_id))
            session.add(SpecTicket(run_id=spec.run_id, ticket_hash=_digest(ticket), spec=spec.model_dump_json(),
                                   expires_at=now + ttl, redeemed_at=None, created_at=now))
        return ticket

    async def redeem(self, run_id: int, ticket: str) -> Redeemed:
        """The run's spec and a fresh report secret, once; `TicketRefused` otherwise."""
        now = self.clock()
        report_secret = secrets.token_urlsafe(32)
        async with self.store.sessions.begin() as session:
            row = await session.get(SpecTicket, run_id)
            # Same answer for "no ticket" and "wrong ticket": the endpoint says nothing about which runs exist.
            if row is None or not hmac.compare_digest(row.ticket_hash, _digest(ticket)):
                raise TicketRefused(401, "this run's spec ticket is required")
            if row.redeemed_at is not None:
                raise TicketRefused(410, "this spec ticket was already used")
            if row.expires_at <= now:
                raise TicketRefused(410, "this spec ticket has expired")
            spent = await session.execute(
                update(SpecTicket)
                .where(SpecTicket.run_id == run_id, SpecTicket.redeemed_at.is_(None))
                .values(redeemed_at=now, spec=None)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(spent) != 1:
                raise TicketRefused(410, "this spec ticket was already used")
            spec_text = row.spec
            rotated = await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.state.in_(ON_RUNNER))
                .values(secret_hash=secret_hash(report_secret), updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(rotated) != 1 or spec_text is None:
                raise TicketRefused(409, f"run {run_id} is not waiting for a runner any more")
        register_secret(report_secret, run_id=run_id)
        return Redeemed(RunSpec.model_validate_json(spec_text), report_secret)

    async def forget(self, run_id: int) -> None:
        """Drop a run's ticket (its runner could not be started, or it ended)."""
        async with self.store.sessions.begin() as session:
            await session.execute(delete(SpecTicket).where(SpecTicket.run_id == run_id))


@router.get("/api/runs/{run_id}/spec")
async def run_spec(run_id: int, request: Request) -> JSONResponse:
    """A remote runner's one fetch of its spec: `{"spec": …, "credentials": {"KICKOFF_RUN_SECRET": …}}`."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "this run's spec ticket is required", headers={"WWW-Authenticate": "Bearer"})
    services: Services = request.app.state.services
    try:
        redeemed = await TicketStore(services.store, clock=services.clock).redeem(run_id, given.strip())
    except TicketRefused as exc:
        log.warning("run %s: spec fetch refused (%s)", run_id, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    log.info("run %s: its runner fetched the spec", run_id)
    body = {"spec": redeemed.spec.model_dump(mode="json"), "credentials": {ENV_RUN_SECRET: redeemed.report_secret}}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})

