"""Gemini CLI (`@google/gemini-cli`), headless mode.

argv:   gemini --output-format json --approval-mode auto_edit --skip-trust [--model MODEL] --prompt INSTRUCTION
stdin:  the prompt file; `--prompt` is appended to stdin, so it only says to carry out the task above
env:    the allow-list plus the names the repo lists (built-in: GEMINI_API_KEY)
output: one (pretty-printed) JSON object on stdout (on stderr for an error): `response` (the summary),
        `error.message`, and `stats.models` keyed by model name, each with `api.totalRequests` and
        `tokens.prompt` / `tokens.candidates` / `tokens.thoughts`.
        Input tokens are the prompts' (cached included), output tokens candidates plus thoughts, turns the API
        requests. Gemini reports no cost.
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
    as_int,
    bounded_summary,
    model_args,
    trailing_json_object,
)
from bot.runspec import Usage

INSTRUCTION = "Carry out the task described in the input above, editing the files in the current directory."


def invocation(ctx: AgentContext) -> Invocation:
    argv = ("gemini", "--output-format", "json", "--approval-mode", "auto_edit", "--skip-trust",
            *model_args("--model", ctx.agent), "--prompt", INSTRUCTION)
    return Invocation(argv=argv, stdin=ctx.prompt_file)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage(stats: object) -> Usage:
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict) or not models:
        return Usage()
    inputs: list[int | None] = []
    outputs: list[int | None] = []
    requests: list[int | None] = []
    totals: dict[str, int] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            continue
        tokens = _mapping(entry.get("tokens"))
        api = _mapping(entry.get("api"))
        inputs.append(as_int(tokens.get("prompt")))
        outputs.append(add(as_int(tokens.get("candidates")), as_int(tokens.get("thoughts"))))
        requests.append(as_int(api.get("totalRequests")))
        totals[str(name)] = as_int(tokens.get("total")) or 0
    return Usage(input_tokens=add(*inputs), output_tokens=add(*outputs), turns=add(*requests),
                 model=max(totals, key=lambda name: totals[name]) if totals else None)


def parse(output: AgentOutput) -> AgentReport:
    # Errors come as the same JSON shape, but on stderr: then it ends the transcript.
    result = trailing_json_object(output.stdout) or trailing_json_object(output.transcript)
    if result is None:
        return AgentReport()
    error = None
    failure = result.get("error")
    if isinstance(failure, dict):
        message = failure.get("message")
        error = f"Gemini CLI error: {message}"[:500] if isinstance(message, str) else "Gemini CLI error"
    return AgentReport(summary=bounded_summary(result.get("response")), usage=_usage(result.get("stats")),
                       error=error)


ADAPTER = Adapter(name="gemini", invocation=invocation, parse=parse)
