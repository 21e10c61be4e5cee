"""Aider (`aider-chat` on PyPI), scripted with a message file.

argv:   aider --message-file PROMPT_FILE --yes-always --no-auto-commits --no-dirty-commits --no-gitignore
        --no-check-update --no-analytics --no-pretty --no-stream --no-show-model-warnings [--model MODEL]
env:    the allow-list plus the names the repo lists (built-in: OPENAI_API_KEY, ANTHROPIC_API_KEY)
output: free text with no machine-readable report and no summary. Where aider prints its cost lines
        (`Tokens: 2.4k sent, 310 received. Cost: $0.01 message, $0.02 session.`), the tokens are summed (aider
        rounds them to hundreds above 1k) and the cost is the last session total.
Kickoff commits, so aider must not: --no-auto-commits and --no-dirty-commits.
"""

from __future__ import annotations

import re
from typing import Final

from bot.agents.base import Adapter, AgentContext, AgentOutput, AgentReport, Invocation, model_args
from bot.runspec import Usage

_TOKENS: Final = re.compile(r"Tokens: ([\d.,]+)(k?) sent.*?, ([\d.,]+)(k?) received")
_COST: Final = re.compile(r"Cost: \$([\d.,]+) message, \$([\d.,]+) session")


def invocation(ctx: AgentContext) -> Invocation:
    argv = ("aider", "--message-file", str(ctx.prompt_file), "--yes-always", "--no-auto-commits",
            "--no-dirty-commits", "--no-gitignore", "--no-check-update", "--no-analytics", "--no-pretty",
            "--no-stream", "--no-show-model-warnings", *model_args("--model", ctx.agent))
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
    usage = Usage(input_tokens=sent if found else None, output_tokens=received if found else None, cost_usd=cost)
    return AgentReport(usage=usage)


ADAPTER = Adapter(name="aider", invocation=invocation, parse=parse)
