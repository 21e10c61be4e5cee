"""Gemini CLI (`@google/gemini-cli`), headless mode.

argv:   gemini --output-format json --approval-mode MODE --skip-trust [--model MODEL] --prompt INSTRUCTION
        MODE is `yolo` (every tool approved, the shell tool included, so it can run the repository's tests) when
        the runner's sandbox holds the agent, and `auto_edit` (file edits only: headless Gemini then offers no
        shell tool) when it does not.
stdin:  the prompt file; `--prompt` is appended to stdin, so it only says to carry out the task above
env:    the allow-list plus the names the repo lists (built-in: GEMINI_API_KEY); a custom endpoint is
        GOOGLE_GEMINI_BASE_URL (the CLI's own name).
files:  HOME/.gemini/settings.json (HOME is the run's scratch directory, outside the checkout) when GEMINI_API_KEY
        is set: it selects API-key auth (`security.auth.selectedType`), without which GOOGLE_GEMINI_BASE_URL
        makes the CLI pick a "gateway" auth and exit 41; it turns usage statistics and update checks off, and the
        loading of a `.env` from the checkout (`advanced.ignoreLocalEnv`: a repository's `.env` could otherwise
        set GOOGLE_GEMINI_BASE_URL and send the key elsewhere).
output: one (pretty-printed) JSON object on stdout (on stderr for an error): `response` (the summary),
        `error.message`, and `stats.models` keyed by model name, each with `api.totalRequests` and
        `tokens.prompt` / `tokens.candidates` / `tokens.thoughts`.
        Input tokens are the prompts' (cached included), output tokens candidates plus thoughts, turns the API
        requests. Gemini reports no cost.
"""

from __future__ import annotations

import json
from typing import Any, Final

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


SETTINGS: Final = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "advanced": {"ignoreLocalEnv": True},
}
"""The CLI's user settings for a run keyed with GEMINI_API_KEY."""


def invocation(ctx: AgentContext) -> Invocation:
    mode = "yolo" if ctx.sandboxed else "auto_edit"
    argv = ("gemini", "--output-format", "json", "--approval-mode", mode, "--skip-trust",
            *model_args("--model", ctx.agent), "--prompt", INSTRUCTION)
    files = {".gemini/settings.json": json.dumps(SETTINGS, indent=2) + "\n"} if ctx.env.get("GEMINI_API_KEY") else {}
    return Invocation(argv=argv, stdin=ctx.prompt_file, files=files)


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
