"""OpenAI Codex CLI (`@openai/codex`), `codex exec` non-interactive.

argv:   codex exec --json --color never --sandbox MODE --skip-git-repo-check --ephemeral --cd WORKDIR
        [--model MODEL] -
        MODE is `workspace-write` (Codex's own sandbox) unless the runner's sandbox holds the agent: Codex's
        sandbox cannot nest inside it (no user namespaces there), so there it is `danger-full-access`, and the
        shell commands Codex runs (the repository's tests) are confined by the runner's sandbox.
stdin:  the prompt file (`-` reads the instructions from stdin)
env:    the allow-list plus the names the repo lists (built-in: OPENAI_API_KEY, OPENAI_BASE_URL).
        Current Codex reads neither name itself: `codex exec` takes its key from CODEX_API_KEY (or a stored login)
        and its endpoint only from a config.toml. So when the agent's environment holds OPENAI_API_KEY (or
        CODEX_API_KEY), the adapter writes HOME/.codex/config.toml (HOME is the run's own scratch directory, outside
        the checkout) selecting a model provider `kickoff` with `base_url` = OPENAI_BASE_URL (default
        https://api.openai.com/v1), `env_key` = the name that holds the key, the Responses API over HTTPS
        (server-sent events; no WebSocket), and CODEX_HOME pointing there. With neither key Codex is left to its
        own configuration (a CODEX_HOME the repo lists, holding a login).
output: JSON Lines events. The summary is the text of the last `item.completed` whose item is an `agent_message`;
        usage is the last `turn.completed` `usage` (cumulative for the thread: input_tokens, which include
        cached_input_tokens, and output_tokens); older releases printed `token_count` events instead, read the
        same way. `turn.failed` is the agent's error; `error` events are often transient ("Reconnecting... 2/5") and
        count only when no turn completed. Codex reports no cost, and no turn count.
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
    as_int,
    bounded_summary,
    json_lines,
    model_args,
)
from bot.runspec import Usage

KEY_NAMES: Final = ("OPENAI_API_KEY", "CODEX_API_KEY")
"""Where the key may be, in order: the vendor's usual name first."""
BASE_URL_ENV: Final = "OPENAI_BASE_URL"
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
PROVIDER: Final = "kickoff"
CONFIG_DIR: Final = ".codex"
"""CODEX_HOME, relative to the agent's HOME."""


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML reads)."""
    return json.dumps(value, ensure_ascii=False)


def config_toml(base_url: str, env_key: str) -> str:
    """Codex's config.toml: the `kickoff` model provider, the only one it uses."""
    return (
        "# Written by Kickoff for this run only.\n"
        f"model_provider = {_toml_string(PROVIDER)}\n"
        "check_for_update_on_startup = false\n\n"
        f"[model_providers.{PROVIDER}]\n"
        f"name = {_toml_string('OpenAI (via Kickoff)')}\n"
        f"base_url = {_toml_string(base_url)}\n"
        f"env_key = {_toml_string(env_key)}\n"
        'wire_api = "responses"\n'
        "supports_websockets = false\n"
    )


def invocation(ctx: AgentContext) -> Invocation:
    # Codex's own sandbox (bubblewrap, user namespaces) cannot nest inside the runner's, which allows no further
    # namespaces: in it, Codex runs its commands directly, confined by the runner's sandbox instead.
    mode = "danger-full-access" if ctx.sandboxed else "workspace-write"
    argv = ("codex", "exec", "--json", "--color", "never", "--sandbox", mode, "--skip-git-repo-check",
            "--ephemeral", "--cd", str(ctx.workdir), *model_args("--model", ctx.agent), "-")
    key = next((name for name in KEY_NAMES if ctx.env.get(name)), None)
    if key is None:
        return Invocation(argv=argv, stdin=ctx.prompt_file)
    base_url = ctx.env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    home = ctx.home / CONFIG_DIR
    return Invocation(argv=argv, stdin=ctx.prompt_file, env={"CODEX_HOME": str(home)},
                      files={f"{CONFIG_DIR}/config.toml": config_toml(base_url.rstrip("/"), key)})


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
