"""Claude Code (`@anthropic-ai/claude-code`), non-interactive print mode.

argv:   claude -p --output-format json --permission-mode bypassPermissions [--model MODEL]
        [--max-budget-usd LIMITS.MAX_COST_USD] (in Kickoff's sandbox: every tool, Bash included, so it can run the
        tests; outside it `acceptEdits`, edits only). Claude Code checks its budget after each API call, so the
        final cost can pass it by one call; it then ends with subtype `error_max_budget_usd`.
stdin:  the prompt file (so a long prompt never meets the argv size limit, and never shows in `ps`)
env:    the allow-list plus the names the repo lists (built-in: ANTHROPIC_API_KEY; ANTHROPIC_BASE_URL if listed);
        DISABLE_TELEMETRY=1, DISABLE_AUTOUPDATER=1, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
output: one JSON object on stdout (`"type": "result"`): `result` (the summary), `is_error` and `subtype`,
        `num_turns`, `total_cost_usd`, `usage.input_tokens` (+ `cache_creation_input_tokens`,
        `cache_read_input_tokens`), `usage.output_tokens`, and `modelUsage` keyed by model name.
"""

from __future__ import annotations

from typing import Any

from bot.agents.base import (
    Adapter,
    AgentContext,
    AgentOutput,
    AgentReport,
    Invocation,
    add,
    as_float,
    as_int,
    bounded_summary,
    json_lines,
    model_args,
    trailing_json_object,
)
from bot.runspec import Usage

FIXED_ENV = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


BUDGET_SUBTYPE = "error_max_budget_usd"
"""The result's subtype when Claude Code stopped at --max-budget-usd."""


SANDBOXED_ENV = {
    # Claude Code refuses to skip its permission prompts as root unless told it is in a sandbox; it is (bubblewrap).
    "IS_SANDBOX": "1",
}


def invocation(ctx: AgentContext) -> Invocation:
    # Inside Kickoff's sandbox every tool may run without asking (there is nobody to ask, and the sandbox is the
    # boundary): Bash included, so it can run the repository's tests. Outside it, edits only.
    mode = "bypassPermissions" if ctx.sandboxed else "acceptEdits"
    budget = ("--max-budget-usd", dollars(ctx.max_cost_usd)) if ctx.max_cost_usd is not None else ()
    argv = ("claude", "-p", "--output-format", "json", "--permission-mode", mode,
            *model_args("--model", ctx.agent), *budget)
    env = {**FIXED_ENV, **SANDBOXED_ENV} if ctx.sandboxed else FIXED_ENV
    return Invocation(argv=argv, stdin=ctx.prompt_file, env=env)


def dollars(amount: float) -> str:
    """An amount as a plain decimal (never `1e-05`), to the micro-dollar."""
    return f"{amount:.6f}".rstrip("0").rstrip(".")


def _result_object(stdout: str) -> dict[str, Any] | None:
    final = trailing_json_object(stdout)
    if final is not None and final.get("type", "result") == "result":
        return final
    # --output-format stream-json (a user's own wrapper): the last `result` line.
    results = [line for line in json_lines(stdout) if line.get("type") == "result"]
    return results[-1] if results else None


def _model(result: dict[str, Any]) -> str | None:
    per_model = result.get("modelUsage")
    if not isinstance(per_model, dict) or not per_model:
        return None

    def cost(name: str) -> float:
        entry = per_model[name]
        return (as_float(entry.get("costUSD")) or 0.0) if isinstance(entry, dict) else 0.0

    return str(max(per_model, key=cost))


def parse(output: AgentOutput) -> AgentReport:
    result = _result_object(output.stdout)
    if result is None:
        return AgentReport()
    raw_usage = result.get("usage")
    tokens: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    usage = Usage(
        input_tokens=add(as_int(tokens.get("input_tokens")), as_int(tokens.get("cache_creation_input_tokens")),
                         as_int(tokens.get("cache_read_input_tokens"))),
        output_tokens=as_int(tokens.get("output_tokens")),
        cost_usd=as_float(result.get("total_cost_usd")),
        turns=as_int(result.get("num_turns")),
        model=_model(result),
    )
    summary = bounded_summary(result.get("result"))
    error = None
    if result.get("subtype") == BUDGET_SUBTYPE:
        # Stopped at --max-budget-usd: not a failure of the agent, its work so far is what the budget bought.
        return AgentReport(summary=summary, usage=usage, budget_reached=True)
    if result.get("is_error") is True:
        subtype = result.get("subtype") or "error"
        error = f"Claude Code reported an error ({subtype})" + (f": {summary[:300]}" if summary else "")
    return AgentReport(summary=summary, usage=usage, error=error)


ADAPTER = Adapter(name="claude", invocation=invocation, parse=parse)
