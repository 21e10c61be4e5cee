"""OpenAI Codex CLI (`@openai/codex`), `codex exec` non-interactive.

argv:   codex exec --json --color never --sandbox workspace-write --skip-git-repo-check --ephemeral
        --cd WORKDIR [--model MODEL] -
stdin:  the prompt file (`-` reads the instructions from stdin)
env:    the allow-list plus the names the repo lists (built-in: OPENAI_API_KEY); HOME is the run's own, so Codex
        reads no user's config.toml (CODEX_HOME, if the repo lists it, points elsewhere)
output: JSON Lines events. The summary is the text of the last `item.completed` whose item is an `agent_message`;
        usage is the last `turn.completed` `usage` (cumulative for the thread: input_tokens, which include
        cached_input_tokens, and output_tokens); older releases printed `token_count` events instead, read the
        same way. `turn.failed` is the agent's error; `error` events are often transient ("Reconnecting... 2/5") and
        count only when no turn completed. Codex reports no cost.
"""

from __future__ import annotations

from typing import Any

from bot.agents.base import (
    Adapter,
    AgentContext,
    AgentOutput,
    AgentReport,
    Invocation,
    as_int,
    bounded_summary,
    json_lines,
    model_args,
)
from bot.runspec import Usage


def invocation(ctx: AgentContext) -> Invocation:
    argv = ("codex", "exec", "--json", "--color", "never", "--sandbox", "workspace-write", "--skip-git-repo-check",
            "--ephemeral", "--cd", str(ctx.workdir), *model_args("--model", ctx.agent), "-")
    return Invocation(argv=argv, stdin=ctx.prompt_file)


def _token_counts(event: dict[str, Any]) -> dict[str, Any] | None:
    """The cumulative token counts an event carries, in any of the shapes Codex has printed."""
    if event.get("type") == "turn.completed" and isinstance(event.get("usage"), dict):
        return event["usage"]  # type: ignore[no-any-return]
    message = event.get("msg") if isinstance(event.get("msg"), dict) else event
    if not isinstance(message, dict) or message.get("type") != "token_count":
        return None
    info = message.get("info")
    if isinstance(info, dict) and isinstance(info.get("total_token_usage"), dict):
        return info["total_token_usage"]  # type: ignore[no-any-return]
    return message


def parse(output: AgentOutput) -> AgentReport:
    summary = ""
    counts: dict[str, Any] | None = None
    failed: str | None = None
    last_error: str | None = None
    completed = False
    for event in json_lines(output.stdout):
        kind = event.get("type")
        raw = event.get("msg")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        item = event.get("item")
        if kind == "item.completed" and isinstance(item, dict) and item.get("type") == "agent_message":
            summary = bounded_summary(item.get("text"))
        elif message.get("type") == "agent_message":
            summary = bounded_summary(message.get("message"))
        elif kind == "turn.completed":
            completed = True
        elif kind == "turn.failed":
            failure = event.get("error")
            text = failure.get("message") if isinstance(failure, dict) else None
            failed = f"Codex turn failed: {text}" if isinstance(text, str) else "Codex turn failed"
        elif kind == "error" and isinstance(event.get("message"), str):
            last_error = event["message"]  # often transient ("Reconnecting... 2/5"): fatal only if nothing completed
        found = _token_counts(event)
        if found is not None:
            counts = found
    usage = Usage()
    if counts is not None:
        usage = Usage(input_tokens=as_int(counts.get("input_tokens")),
                      output_tokens=as_int(counts.get("output_tokens")))
    error = failed or (f"Codex error: {last_error}" if last_error and not completed else None)
    return AgentReport(summary=summary, usage=usage, error=error[:500] if error else None)


ADAPTER = Adapter(name="codex", invocation=invocation, parse=parse)
