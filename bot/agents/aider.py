"""Aider (`aider-chat` on PyPI), scripted with a message file.

argv:   aider --message-file PROMPT_FILE --yes-always --no-auto-commits --no-dirty-commits --no-gitignore
        --no-check-update --no-analytics --no-pretty --no-stream --no-show-model-warnings
        --no-show-release-notes --chat-history-file HOME/.aider.chat.history.md
        --input-history-file HOME/.aider.input.history [--openai-api-base URL] [--model MODEL]
env:    the allow-list plus the names the repo lists (built-in: OPENAI_API_KEY, ANTHROPIC_API_KEY); a custom
        OpenAI-compatible endpoint comes from OPENAI_API_BASE (aider's name) or OPENAI_BASE_URL, and is passed as
        --openai-api-base whenever OPENAI_API_KEY is set (https://api.openai.com/v1 without one), so a `.env` or
        `.aider.conf.yml` in the checkout cannot point the key at another host.
files:  aider's histories go to the agent's HOME; the repo-map cache (`.aider.tags.cache.v4/`) is always in the
        checkout, and like every `.aider*` file the runner never commits it (bot.agents.base.SCRATCH_PATTERNS).
output: free text with no machine-readable report and no summary. Where aider prints its cost lines
        (`Tokens: 2.4k sent, 310 received. Cost: $0.01 message, $0.02 session.`), the tokens are summed (aider
        rounds them to hundreds above 1k), the cost is the last session total and each line is a turn (one
        model request). The same lines bound the run: with `limits.max_cost_usd` set, the runner stops aider once
        its session cost passes the budget (aider has no budget option of its own).
Kickoff commits, so aider must not: --no-auto-commits and --no-dirty-commits. --no-gitignore: aider must not add
its files to the repository's .gitignore (that change would be committed).
"""

from __future__ import annotations

import re
from typing import Final

from bot.agents.base import Adapter, AgentContext, AgentOutput, AgentReport, Invocation, model_args
from bot.runspec import Usage

_TOKENS: Final = re.compile(r"Tokens: ([\d.,]+)(k?) sent.*?, ([\d.,]+)(k?) received")
_COST: Final = re.compile(r"Cost: \$([\d.,]+) message, \$([\d.,]+) session")


BASE_URL_NAMES: Final = ("OPENAI_API_BASE", "OPENAI_BASE_URL")
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"


def invocation(ctx: AgentContext) -> Invocation:
    endpoint: tuple[str, ...] = ()
    if ctx.env.get("OPENAI_API_KEY"):
        base = next((ctx.env[name] for name in BASE_URL_NAMES if ctx.env.get(name)), DEFAULT_BASE_URL)
        endpoint = ("--openai-api-base", base)
    argv = ("aider", "--message-file", str(ctx.prompt_file), "--yes-always", "--no-auto-commits",
            "--no-dirty-commits", "--no-gitignore", "--no-check-update", "--no-analytics", "--no-pretty",
            "--no-stream", "--no-show-model-warnings", "--no-show-release-notes",
            "--chat-history-file", str(ctx.home / ".aider.chat.history.md"),
            "--input-history-file", str(ctx.home / ".aider.input.history"),
            *endpoint, *model_args("--model", ctx.agent))
    return Invocation(argv=argv)


def _count(number: str, thousands: str) -> int:
    value = float(number.replace(",", ""))
    return round(value * 1000) if thousands else round(value)


def parse(output: AgentOutput) -> AgentReport:
    sent = received = 0
    found = False
    for match in _TOKENS.finditer(output.transcript):
        found = True
        sent += _count(match.group(1), match.group(2))
        received += _count(match.group(3), match.group(4))
    costs = _COST.findall(output.transcript)
    cost = float(costs[-1][1].replace(",", "")) if costs else None
    turns = len(_TOKENS.findall(output.transcript))
    usage = Usage(input_tokens=sent if found else None, output_tokens=received if found else None, cost_usd=cost,
                  turns=turns or None)
    return AgentReport(usage=usage)


def running_cost(text: str) -> float | None:
    """Aider's session cost so far: the last `Cost: … $X session` in `text`."""
    costs = _COST.findall(text)
    return float(costs[-1][1].replace(",", "")) if costs else None


ADAPTER = Adapter(name="aider", invocation=invocation, parse=parse, running_cost=running_cost)
