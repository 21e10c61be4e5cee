"""Keep the installations and repositories Kickoff can act on in step with GitHub."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from bot.events import Installation as InstallationModel
from bot.events import InstallationEvent, InstallationRepositoriesEvent, RepoSummary
from bot.features import Features
from bot.routing import Event, Router
from bot.store.models import Installation, Repository

log = logging.getLogger(__name__)
router: Router[Features] = Router()


def _insert(services: Features) -> Callable[..., Any]:
    return postgresql.insert if services.store.dialect == "postgresql" else sqlite.insert


async def _upsert_installation(services: Features, inst: InstallationModel, *, suspended: bool) -> None:
    now = services.clock()
    stmt = _insert(services)(Installation).values(
        id=inst.id,
        account_login=inst.account.login,
        account_type=inst.account.type,
        suspended=suspended,
        created_at=now,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"account_login": inst.account.login, "suspended": suspended, "updated_at": now},
    )
    async with services.store.sessions.begin() as session:
        await session.execute(stmt)


async def _upsert_repos(services: Features, installation_id: int, repos: list[RepoSummary]) -> None:
    if not repos:
        return
    stmt = _insert(services)(Repository).values(
        [{"id": r.id, "installation_id": installation_id, "full_name": r.full_name, "private": r.private}
         for r in repos]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"installation_id": stmt.excluded.installation_id, "full_name": stmt.excluded.full_name},
    )
    async with services.store.sessions.begin() as session:
        await session.execute(stmt)


@router.on("installation.created", "installation.new_permissions_accepted", "installation.unsuspend")
async def installation_added(event: Event, services: Features) -> None:
    payload = event.parse(InstallationEvent)
    await _upsert_installation(services, payload.installation, suspended=False)
    await _upsert_repos(services, payload.installation.id, payload.repositories or [])
    log.info("installation %s on %s is active", payload.installation.id, payload.installation.account.login)


@router.on("installation.suspend")
async def installation_suspended(event: Event, services: Features) -> None:
    payload = event.parse(InstallationEvent)
    await _upsert_installation(services, payload.installation, suspended=True)


@router.on("installation.deleted")
async def installation_deleted(event: Event, services: Features) -> None:
    payload = event.parse(InstallationEvent)
    async with services.store.sessions.begin() as session:
        await session.execute(delete(Repository).where(Repository.installation_id == payload.installation.id))
        await session.execute(delete(Installation).where(Installation.id == payload.installation.id))
    log.info("installation %s removed", payload.installation.id)


@router.on("installation_repositories")
async def installation_repositories_changed(event: Event, services: Features) -> None:
    payload = event.parse(InstallationRepositoriesEvent)
    await _upsert_installation(services, payload.installation, suspended=False)
    await _upsert_repos(services, payload.installation.id, payload.repositories_added)
    removed = [r.id for r in payload.repositories_removed]
    if removed:
        async with services.store.sessions.begin() as session:
            await session.execute(delete(Repository).where(Repository.id.in_(removed)))
