"""Any program (`adapter: command`): the repo's argv with `{prompt_file}` and `{workdir}` replaced.

argv:   the configured argv, item by item (never a shell string); the program runs in the checkout
stdin:  nothing
env:    the allow-list plus the names the repo lists
output: free text. If stdout ends with a JSON object holding `summary` (a string) and/or `usage` (an object with
        any of input_tokens, output_tokens, cost_usd, turns, model), they are read; an `error` string there marks
        the run failed.
        A program may also print its cumulative usage as it goes, one JSON line at a time
        (`{"usage": {"cost_usd": 0.12}}`): with `limits.max_cost_usd` set, the runner stops it once that passes the
        budget, and publishes what it had as an incomplete draft.
"""

from __future__ import annotations

from bot.agents.base import (
    Adapter,
    AgentContext,
    AgentOutput,
    AgentReport,
    Invocation,
    bounded_summary,
    streamed_cost,
    trailing_json_object,
    usage_from_mapping,
)
from bot.runspec import Usage


class CommandError(ValueError):
    """The agent's command is unusable (empty)."""


def invocation(ctx: AgentContext) -> Invocation:
    if not ctx.agent.command or not ctx.agent.command[0].strip():
        raise CommandError("adapter `command` needs a non-empty `command` argv")
    values = {"{prompt_file}": str(ctx.prompt_file), "{workdir}": str(ctx.workdir)}
    argv = []
    for item in ctx.agent.command:
        for placeholder, value in values.items():
            item = item.replace(placeholder, value)
        argv.append(item)
    return Invocation(argv=tuple(argv))


def parse(output: AgentOutput) -> AgentReport:
    report = trailing_json_object(output.stdout)
    if report is None or not ({"summary", "usage", "error"} & report.keys()):
        return AgentReport()
    usage = report.get("usage")
    error = report.get("error")
    return AgentReport(
        summary=bounded_summary(report.get("summary")),
        usage=usage_from_mapping(usage) if isinstance(usage, dict) else Usage(),
        error=error[:500] if isinstance(error, str) and error else None,
    )


ADAPTER = Adapter(name="command", invocation=invocation, parse=parse, running_cost=streamed_cost)
