"""Keep the repo-config service's memory (`bot.repo_configs`) in step with pushes: a push to a default branch that
touches a config file forgets what is remembered of it, so the next load reads it afresh."""

from __future__ import annotations

import logging

from bot.config.loader import CONFIG_PATH
from bot.events import PushEvent
from bot.features import Features
from bot.routing import Event, Router

log = logging.getLogger(__name__)
router: Router[Features] = Router()

CONFIG_SUFFIXES = (".yml", ".yaml")
"""Files a config may be read from: `.github/kickoff.yml`, and whatever `_extends` names (YAML, by convention)."""


@router.on("push")
async def config_pushed(event: Event, services: Features) -> None:
    payload = event.parse(PushEvent)
    installation_id = event.installation_id or (payload.installation.id if payload.installation else None)
    default = payload.repository.default_branch
    if installation_id is None or default is None or payload.ref != f"refs/heads/{default}":
        return
    touched = payload.touched()
    if touched is not None:
        touched = {path for path in touched if path == CONFIG_PATH or path.endswith(CONFIG_SUFFIXES)}
        if not touched:
            return
    dropped = services.configs.invalidate(installation_id, payload.repository.full_name, touched)
    log.info("push to %s's %s touched %s: config memory of it forgotten (%d remembered misses)",
             payload.repository.full_name, default, "unknown files" if touched is None else sorted(touched), dropped)
