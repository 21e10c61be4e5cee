"""Feature routers, composed into the root router the dispatcher uses."""

from __future__ import annotations

import importlib

from bot.handlers import commands, installations, pull_requests, queue, triggers, workflow_runs
from bot.queue import verbs as _queue_verbs  # noqa: F401 - registers `/agent queue`, `bump`, … `rebase`
from bot.routing import Router
from bot.runs import verbs as _run_verbs  # noqa: F401 - registers `/agent cancel`, `retry` and `status`


def root_router(plugins: str = "") -> Router:
    """The root router: every feature's router, plus plugin routers named as `module:attribute`."""
    extra: list[Router] = []
    for spec in filter(None, (p.strip() for p in plugins.split(","))):
        module_name, _, attribute = spec.partition(":")
        router = getattr(importlib.import_module(module_name), attribute or "router")
        if not isinstance(router, Router):
            raise TypeError(f"plugin {spec!r} is not a Router")
        extra.append(router)
    return Router(installations.router, triggers.router, commands.router, pull_requests.router, workflow_runs.router,
                  queue.router, *extra)
