"""The runner protocol: a run spec in (JSON), progress events and a result out (JSON).

The same `kickoff run-agent --spec FILE` program reads a spec on every backend. A spec holds no secret: the git
token, the report secret and the agent's API keys reach the runner only through its environment (see ENV_* below).
Documented for operators in docs/runners.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = 1

# Environment variables the runner program reads; never written to a file, argv, a log or the report.
ENV_GIT_TOKEN = "KICKOFF_GIT_TOKEN"  # noqa: S105 - per-run installation token: one repository, contents write
ENV_RUN_SECRET = "KICKOFF_RUN_SECRET"  # noqa: S105 - authenticates reports to POST /api/runs/{id}/report

SandboxMode = Literal["required", "auto", "off"]
"""How the runner sandboxes the agent phase (bot.runner_program.sandbox): `required` fails the run when the sandbox
does not work; `auto` uses it when it works and says so when it does not; `off` never uses it."""
Network = Literal["host", "none"]
"""An agent's network in the sandbox: the host's (agents call their model's API), or none at all."""

Outcome = Literal["succeeded", "no_changes", "failed", "timed_out", "cancelled"]
ProgressEvent = Literal["started", "agent_done", "verify_done", "pushed", "finished"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentCommand(_Model):
    """How the runner starts the agent: an adapter name and, for `command`, an argv template."""

    name: str
    adapter: Literal["claude", "codex", "aider", "gemini", "command"]
    command: tuple[str, ...] = ()  # argv with {prompt_file} and {workdir}; only for adapter `command`
    env: tuple[str, ...] = ()  # variable names passed through from the runner's environment
    model: str | None = None
    network: Network = "host"


class CommitIdentity(_Model):
    name: str
    email: str


class JudgeAttempt(_Model):
    """One attempt a judge run reads: its run, its branch (None: it pushed nothing) and its facts line."""

    run_id: int
    branch: str | None = None
    facts: str = ""


class JudgeSpec(_Model):
    """A judge run (a run of kind `judge`): the runner fetches each attempt's branch read-only, appends its diff
    to the prompt, runs the agent, and answers with the agent's final message; it never commits nor pushes."""

    attempts: tuple[JudgeAttempt, ...]


class RunSpec(_Model):
    version: int = SPEC_VERSION
    run_id: int
    repository: str  # owner/name
    clone_url: str  # https://github.com/owner/name.git, without credentials
    base_branch: str
    branch: str  # the branch the runner pushes
    checkout: Literal["base", "branch"] = "base"  # "branch": a follow-up on an existing pull request branch
    task: str
    issue_number: int
    agent: AgentCommand
    prompt: str  # rendered by Kickoff; untrusted text inside it is fenced as data
    output: Literal["pr", "report"] = "pr"
    report_path: str | None = None  # where a research run writes its report, e.g. research/12-slug.md
    timeout_seconds: int = Field(default=1800, ge=10)
    # The no-progress watchdog: an agent that prints nothing and changes no file (in its checkout or HOME) this
    # long is stopped as timed out, long before `timeout_seconds` (a dead endpoint, a login prompt).
    idle_timeout_seconds: int = Field(default=300, ge=1)
    protected_paths: tuple[str, ...] = ()
    max_changed_files: int = Field(default=200, ge=1)
    verify_command: str | None = None  # the repository's own trusted config; split with shlex, never a shell
    verify_timeout_seconds: int = Field(default=600, ge=10)
    commit_identity: CommitIdentity
    commit_message: str
    report_url: str | None = None  # POST progress and the result here; None: only write the result file
    transcript_limit_bytes: int = Field(default=64 * 1024, ge=1024)
    # Remote backends leave the default; the local one sends `required` (or `off` when the operator opted out).
    sandbox: SandboxMode = "auto"
    sandbox_hide: tuple[str, ...] = ()  # absolute paths never shown in the sandbox: Kickoff's .env, database, key
    # `limits.max_cost_usd`: the adapter's own bound where the agent has one (Claude Code's --max-budget-usd), and
    # the runner stops an agent whose streamed cost passes it (aider, `command`); None: no bound.
    max_cost_usd: float | None = Field(default=None, gt=0)
    # `pull_requests.publish_incomplete`: an agent stopped by its timeout, its idle watchdog or its budget after
    # changing files has what it left checked and pushed as usual, and the result says `incomplete`.
    publish_incomplete: bool = False
    judge: JudgeSpec | None = None  # a judge run: no verify, no commit, no push; its answer is `RunResult.report`


class Usage(_Model):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    turns: int | None = None
    model: str | None = None


class VerifyResult(_Model):
    command: str
    exit_code: int | None
    passed: bool
    output_tail: str = ""


class RunResult(_Model):
    run_id: int
    outcome: Outcome
    reason: str | None = None
    branch: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    pushed: bool = False
    files_changed: tuple[str, ...] = ()
    # Of `files_changed`, those the change deletes (a default, so a report from an older runner still parses).
    files_deleted: tuple[str, ...] = ()
    # The diff's size against the base (git's numstat; a binary file counts 0); None: not reported (older runners).
    lines_added: int | None = Field(default=None, ge=0)
    lines_removed: int | None = Field(default=None, ge=0)
    summary: str = ""
    transcript_tail: str = ""
    verify: VerifyResult | None = None
    report: str | None = None  # output "report": the report's text (bounded); a judge run: its answer
    usage: Usage = Usage()
    duration_seconds: float = 0.0
    # The agent was stopped before it finished (`reason` says why: its timeout, its idle watchdog, its budget) and
    # what it had changed was published all the same (outcome `succeeded`): Kickoff opens a draft marked incomplete.
    incomplete: bool = False


class RunReport(_Model):
    """One POST to /api/runs/{id}/report: a progress event, and with `finished` the result."""

    run_id: int
    event: ProgressEvent
    at: datetime
    detail: str | None = None
    result: RunResult | None = None
