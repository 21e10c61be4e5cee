"""Feature routers of events and of `/agent` verbs, composed into the root router the dispatcher uses."""

from __future__ import annotations

import importlib

from bot.features import Features
from bot.handlers import commands, configs, installations, labels, pull_requests, queue, run_commands, workflow_runs
from bot.handlers.verbs import CommandRouter
from bot.routing import Router


def root_commands() -> CommandRouter:
    """Every feature's `/agent` control verbs (task verbs come from the repo config)."""
    return CommandRouter(run_commands.commands, queue.commands)


def root_router(plugins: str = "", *, verbs: CommandRouter | None = None) -> Router[Features]:
    """The root router: every feature's router, plus plugin routers named as `module:attribute`. `verbs` replaces
    the control verbs' router (`root_commands()`)."""
    extra: list[Router[Features]] = []
    for spec in filter(None, (p.strip() for p in plugins.split(","))):
        module_name, _, attribute = spec.partition(":")
        router = getattr(importlib.import_module(module_name), attribute or "router")
        if not isinstance(router, Router):
            raise TypeError(f"plugin {spec!r} is not a Router")
        extra.append(router)
    # configs first: a push forgets what is remembered of a config before the others' handlers read it.
    return Router(configs.router, installations.router, labels.router, commands.router(verbs or root_commands()),
                  pull_requests.router, workflow_runs.router, queue.router, *extra)
