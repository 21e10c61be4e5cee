"""Agent adapters: how the runner starts each agent CLI and reads what it reports.

One small module per agent (`claude`, `codex`, `aider`, `gemini`, and `command` for any program); each documents
its argv, its environment and how usage is read. `get_adapter` is the registry.
"""

from __future__ import annotations

from typing import Final

from bot.agents import aider, claude, codex, command, gemini
from bot.agents.base import (
    Adapter,
    AgentContext,
    AgentOutput,
    AgentReport,
    Invocation,
    agent_environment,
    is_forbidden,
)

ADAPTERS: Final[dict[str, Adapter]] = {
    adapter.name: adapter
    for adapter in (claude.ADAPTER, codex.ADAPTER, aider.ADAPTER, gemini.ADAPTER, command.ADAPTER)
}


def get_adapter(name: str) -> Adapter:
    """The adapter called `name`; KeyError names the known ones."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"no agent adapter `{name}`; known: {', '.join(sorted(ADAPTERS))}") from None


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AgentContext",
    "AgentOutput",
    "AgentReport",
    "Invocation",
    "agent_environment",
    "get_adapter",
    "is_forbidden",
]
