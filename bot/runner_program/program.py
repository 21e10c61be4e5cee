"""The runner program, `kickoff run-agent --spec FILE`: one run of one agent on one repository, the same everywhere.

Three phases. Prepare (trusted): a bare clone with the token into `private/` (0700), and a credential-free copy
of the same commit for the agent in `agent/repo`. Agent (untrusted): the agent, then verify, in that copy, with no
token; once the agent's processes are all gone its files are taken into the private clone (before verify, so
nothing verify writes is published) and checked: protected paths on the real paths, no symbolic links or gitlinks,
the change limit. Publish (trusted): the private clone is checked against what prepare left, and the snapshot is
committed on the recorded base and pushed from there with git configured by Kickoff alone.

A judge run (`spec.judge`, a fan-out's ranking: bot.runs.ranking) prepares the same way, then, still trusted,
fetches each attempt's branch into the private clone and appends its diff (the attempt's commit against its parent,
the base it was made on), fenced as data, to the prompt; the agent runs in the same sandbox; its final message (or
the JSON object its output ends with) is the answer (`RunResult.report`). Nothing is verified, committed or pushed,
and its token can only read.

Every run that gets past reading its spec ends with an outcome in the result file (and a `finished` report), and
exit code 0; a broken spec or environment exits 2 with one line on stderr. Credentials come only from the
environment (see bot.runner_program.secrets) and are redacted from everything the runner writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets as random
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot import messages
from bot.agents import AgentContext, AgentOutput, AgentReport, agent_environment, get_adapter, is_forbidden
from bot.agents.base import SCRATCH_PATTERNS, trailing_json_object
from bot.agents.command import CommandError
from bot.ranking import JUDGE_ANSWER_CHARS, judge_attempt_section
from bot.runner_program import priority
from bot.runner_program.git import MODE_GITLINK, MODE_SYMLINK, Entries, Git, GitError, Tampered
from bot.runner_program.paths import protected
from bot.runner_program.process import MARKER_ENV, CostMeter, ProcessResult, TailBuffer, Watchdog, run_process
from bot.runner_program.report import Reporter
from bot.runner_program.sandbox import BWRAP_ENV, DEFAULT_BWRAP, Decision, SandboxPolicy, decide, workspace_policy
from bot.runner_program.secrets import Secrets, take_secrets
from bot.runspec import (
    ENV_GIT_TOKEN,
    ENV_RUN_SECRET,
    SPEC_VERSION,
    JudgeSpec,
    Outcome,
    RunResult,
    RunSpec,
    VerifyResult,
)
from bot.untrusted import fence_untrusted

log = logging.getLogger("bot.runner_program")

EXIT_OK: Final = 0
EXIT_BAD_INPUT: Final = 2
STDOUT_PARSE_LIMIT: Final = 4 * 1024 * 1024
"""How much of the agent's stdout is kept for its adapter to parse (its final report is at the end)."""
REPORT_TEXT_LIMIT: Final = 60_000
"""Bound on a research report's text in the result (an issue comment holds at most 65,536 characters)."""
CLONE_SCHEMES: Final = frozenset({"https", "http", "file"})
REGULAR_MODES: Final = frozenset({"100644", "100755"})


class BadInput(Exception):
    """The spec or the environment is unusable: exit 2 with this one line."""


@dataclass
class Workspace:
    """The run's directory: `agent/` is all the agent phase may see; `private/` (0700) is the trusted clone."""

    root: Path

    @property
    def agent(self) -> Path:
        """Everything the agent phase may see (bound into its sandbox), and nothing else."""
        return self.root / "agent"

    @property
    def repo(self) -> Path:
        return self.agent / "repo"

    @property
    def prompt(self) -> Path:
        return self.agent / "prompt.md"

    @property
    def home(self) -> Path:
        return self.agent / "home"

    @property
    def tmp(self) -> Path:
        return self.agent / "tmp"

    @property
    def private(self) -> Path:
        return self.root / "private"


def load_spec(path: Path, secrets: Secrets) -> RunSpec:
    """Read and validate the spec; BadInput with one line on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the spec ({getattr(exc, 'strerror', None) or exc})") from None
    if any(value in text for value in secrets.values()):
        raise BadInput(f"{path}: the spec contains a credential; credentials come only from the environment")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(data, dict) and data.get("version", SPEC_VERSION) != SPEC_VERSION:
        raise BadInput(f"{path}: spec version {data.get('version')!r}; this runner reads version {SPEC_VERSION}")
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "spec"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise BadInput(f"{path}: `{where}`: {first['msg']}{more}") from None
    _check_spec(spec, path)
    return spec


def _check_spec(spec: RunSpec, path: Path) -> None:
    url = urlsplit(spec.clone_url)
    if url.scheme not in CLONE_SCHEMES:
        raise BadInput(f"{path}: `clone_url` must be an https (or http, file) URL")
    if url.username or url.password or "@" in url.netloc:
        raise BadInput(f"{path}: `clone_url` must not carry credentials; the token comes from {ENV_GIT_TOKEN}")
    if spec.report_url is not None and urlsplit(spec.report_url).scheme not in {"https", "http"}:
        raise BadInput(f"{path}: `report_url` must be an http(s) URL")
    if spec.output == "report":
        if not spec.report_path:
            raise BadInput(f"{path}: `report_path` is required when `output` is report")
        report = PurePosixPath(spec.report_path)
        if report.is_absolute() or ".." in report.parts or not report.parts or report.parts[0] == ".git":
            raise BadInput(f"{path}: `report_path` must be a relative path inside the repository")
    if spec.agent.adapter == "command" and not (spec.agent.command and spec.agent.command[0].strip()):
        raise BadInput(f"{path}: `agent.command` must name a program for adapter `command`")
    if spec.verify_command is not None:
        try:
            argv = shlex.split(spec.verify_command)
        except ValueError as exc:
            raise BadInput(f"{path}: `verify_command` cannot be split into arguments ({exc})") from None
        if not argv:
            raise BadInput(f"{path}: `verify_command` is empty")
    for name, value in (("base_branch", spec.base_branch), ("branch", spec.branch)):
        if not _valid_branch(value):
            raise BadInput(f"{path}: `{name}` {value!r} is not a valid branch name")


def _valid_branch(name: str) -> bool:
    if not name or name.startswith("-"):
        return False
    try:
        done = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True, check=False,
                              timeout=30)
    except OSError:
        raise BadInput("git is not installed (or not on PATH)") from None
    return done.returncode == 0


def prepare_workspace(requested: Path | None, run_id: int) -> Workspace:
    if requested is None:
        root = Path(tempfile.mkdtemp(prefix=f"kickoff-run-{run_id}-"))
    else:
        root = requested.resolve()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise BadInput(f"{requested}: the workspace must be a new or empty directory")
        root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root)
    workspace.private.mkdir(mode=0o700)
    workspace.private.chmod(0o700)  # whatever the umask
    workspace.agent.mkdir()
    workspace.home.mkdir()
    workspace.tmp.mkdir()
    return workspace


@contextlib.contextmanager
def cancellation() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the run is in progress (installable only in the main thread)."""
    cancel = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous: list[tuple[signal.Signals, signal._HANDLER]] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous.append((signum, signal.signal(signum, handler)))
    try:
        yield cancel
    finally:
        for signum, old in previous:
            signal.signal(signum, old)


class Stop(Exception):
    """Ends the run early with an outcome."""

    def __init__(self, outcome: Outcome, reason: str | None = None) -> None:
        super().__init__(reason or outcome)
        self.outcome: Outcome = outcome
        self.reason = reason


@dataclass
class _State:
    base_sha: str | None = None
    head_sha: str | None = None
    pushed: bool = False
    files_changed: tuple[str, ...] = ()
    files_deleted: tuple[str, ...] = ()
    lines: tuple[int, int] | None = None  # added, removed
    agent: AgentReport = field(default_factory=AgentReport)
    transcript: str = ""
    verify: VerifyResult | None = None
    report: str | None = None
    incomplete: bool = False
    stdout: str = ""  # the agent's stdout (bounded): a judge without a final message may have printed its answer


class Run:
    """One run of the program, from a validated spec to a written result."""

    def __init__(self, spec: RunSpec, secrets: Secrets, workspace: Workspace, result_path: Path,
                 source_env: Mapping[str, str], cancel: threading.Event) -> None:
        self.spec = spec
        self.secrets = secrets
        self.workspace = workspace
        self.result_path = result_path
        self.source_env = dict(source_env)
        self.cancel = cancel
        self.state = _State()
        self.marker = random.token_hex(16)
        self._sandbox_decision: Decision | None = None
        # Values of the variables passed to the agent (its API keys) are redacted too.
        self.passed_values = tuple(self.source_env[name] for name in spec.agent.env
                                   if name in self.source_env and not is_forbidden(name))
        self.reporter = Reporter(spec.report_url, secrets.run_secret, spec.run_id, self.redact)
        self._git: Git | None = None
        self._before: Entries = {}
        self._tree: str | None = None

    def redact(self, text: str) -> str:
        return self.secrets.redact(text, self.passed_values)

    def execute(self) -> RunResult:
        started = time.monotonic()
        self.reporter.send("started", detail=f"{self.spec.agent.name} on {self.spec.repository}")
        try:
            outcome, reason = self._steps()
        except Stop as stop:
            outcome, reason = stop.outcome, stop.reason
        except Exception as exc:  # the one catch-all: a runner bug still ends as a reported, failed run
            log.exception("run %s: unexpected error", self.spec.run_id)
            outcome, reason = "failed", f"runner error: {type(exc).__name__}: {exc}"
        result = self._result(outcome, reason, time.monotonic() - started)
        write_result(self.result_path, result)
        self.reporter.send("finished", detail=outcome, result=result)
        self.reporter.close()
        return result

    def _result(self, outcome: Outcome, reason: str | None, duration: float) -> RunResult:
        state = self.state
        usage = state.agent.usage
        if usage.model is None and self.spec.agent.model:
            usage = usage.model_copy(update={"model": self.spec.agent.model})
        return RunResult(
            run_id=self.spec.run_id,
            outcome=outcome,
            reason=self.redact(reason)[:2000] if reason else None,
            branch=self.spec.branch if state.pushed else None,
            base_sha=state.base_sha,
            head_sha=state.head_sha if state.pushed else None,
            pushed=state.pushed,
            files_changed=state.files_changed,
            files_deleted=state.files_deleted,
            lines_added=state.lines[0] if state.lines is not None else None,
            lines_removed=state.lines[1] if state.lines is not None else None,
            summary=self.redact(state.agent.summary),
            transcript_tail=self.redact(state.transcript),
            verify=state.verify,
            report=self.redact(state.report) if state.report is not None else None,
            usage=usage,
            duration_seconds=round(duration, 3),
            incomplete=state.incomplete and state.pushed,
        )

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Stop("cancelled", "cancelled")

    @property
    def git(self) -> Git:
        assert self._git is not None, "prepare runs first"
        return self._git

    def _steps(self) -> tuple[Outcome, str | None]:
        spec = self.spec
        if spec.judge is not None:
            return self._judge(spec.judge)
        self._prepare()
        self._check_cancel()
        self.workspace.prompt.write_text(spec.prompt, encoding="utf-8")

        stopped = self._run_agent()  # returns only once every process the agent started is gone
        self._check_cancel()
        if stopped is not None:
            return self._publish_incomplete(stopped)
        self._take_snapshot()
        if spec.verify_command:
            self._verify(spec.verify_command)
        self._check_cancel()
        return self._publish()

    def _prepare(self) -> None:
        """Trusted: the private clone (the only place the token is used) and the agent's credential-free copy."""
        spec, state, ws = self.spec, self.state, self.workspace
        checkout = spec.base_branch if spec.checkout == "base" else spec.branch
        log.info("run %s: cloning %s (%s)", spec.run_id, spec.repository, checkout)
        try:
            self._git = Git(private=ws.private, workspace=ws.root, source_env=self.source_env,
                            token=self.secrets.git_token, clone_url=spec.clone_url, redact=self.redact)
            base = state.base_sha = self.git.clone(checkout)
            self._before = self.git.tree_entries(base)
            branches = [spec.branch, checkout]
            self.git.make_working_copy(ws.repo, base, branches, upstream=checkout)
            self.git.seal()
        except GitError as exc:
            raise Stop("failed", f"clone: {exc}") from None

    def _judge(self, judge: JudgeSpec) -> tuple[Outcome, str | None]:
        """A judge run: the attempts' diffs into the prompt (trusted), the agent, its answer; nothing pushed."""
        self._prepare()
        self._check_cancel()
        sections = [judge_attempt_section(attempt.run_id, attempt.facts, self._attempt_diff(attempt.run_id,
                                                                                              attempt.branch),
                                          fence_untrusted)
                    for attempt in judge.attempts]
        self.workspace.prompt.write_text("\n\n".join([self.spec.prompt, *sections]), encoding="utf-8")
        self._run_agent()
        self._check_cancel()
        answer = self.state.agent.summary.strip() or _stdout_answer(self.state.stdout)
        if not answer:
            raise Stop("failed", "the judge gave no answer")
        self.state.report = answer[: JUDGE_ANSWER_CHARS + 1]  # longer is nonsense, and bot.ranking says so
        return "succeeded", None

    def _attempt_diff(self, run_id: int, branch: str | None) -> str:
        """What an attempt changed, read from its branch with git (a missing branch says so, it fails nothing)."""
        if branch is None:
            return "(this attempt pushed no branch: there is no diff)"
        try:
            head = self.git.fetch_branch(branch, f"refs/kickoff/attempts/{run_id}")
            return self.git.diff_text(f"{head}^", head)
        except GitError as exc:
            log.warning("run %s: could not read the diff of run %s: %s", self.spec.run_id, run_id, exc)
            return f"(the branch of this attempt could not be read: {exc})"

    def _take_snapshot(self) -> None:
        """Trusted, before verify runs: the agent's files into the private clone, and the checks on them."""
        spec, ws = self.spec, self.workspace
        only = None
        if spec.output == "report" and spec.report_path:
            only = [spec.report_path]
            report = ws.repo / spec.report_path
            if report.is_symlink() or not report.is_file():
                raise Stop("failed", f"the agent did not write the report at {spec.report_path}")
        repo = ws.repo.lstat()
        if not stat.S_ISDIR(repo.st_mode):
            raise Stop("failed", "the agent replaced its working copy with something else; nothing was pushed")
        try:
            self.git.check_sealed()
            after = self.git.snapshot(ws.repo, self.state.base_sha or "", only, exclude=SCRATCH_PATTERNS)
        except Tampered as exc:
            raise Stop("failed", f"{exc}; nothing was pushed") from None
        except GitError as exc:
            raise Stop("failed", str(exc)) from None
        changed = _changed(self._before, after)
        self.state.files_changed = tuple(changed)
        self.state.files_deleted = tuple(path for path in changed if path not in after)
        self._check_changes(changed, after)
        try:
            self._tree = self.git.write_tree()
        except GitError as exc:
            raise Stop("failed", str(exc)) from None
        try:
            self.state.lines = self.git.diff_size(self.state.base_sha or "", self._tree)
        except GitError as exc:  # the size is evidence for the ranking, not a reason to fail the run
            log.warning("run %s: could not count the diff's lines: %s", self.spec.run_id, exc)

    def _publish(self) -> tuple[Outcome, str | None]:
        """Trusted: commit the snapshot on the recorded base and push it from the private clone."""
        spec, git, state = self.spec, self.git, self.state
        assert self._tree is not None
        assert state.base_sha is not None
        try:
            git.check_sealed()
            commit = git.commit(self._tree, state.base_sha, spec.commit_message, spec.commit_identity, spec.run_id)
            log.info("run %s: pushing %s", spec.run_id, spec.branch)
            git.check_sealed()
            git.push(commit, spec.branch)
        except Tampered as exc:
            raise Stop("failed", f"{exc}; nothing was pushed") from None
        except GitError as exc:
            raise Stop("failed", str(exc)) from None
        state.pushed, state.head_sha = True, commit
        self.reporter.send("pushed", detail=f"{spec.branch} at {commit}")
        return "succeeded", None

    def _publish_incomplete(self, stopped: Stop) -> tuple[Outcome, str | None]:
        """The agent was stopped (timeout, idle, budget): what it left goes through the same snapshot, checks and
        publish as a finished agent's (verify does not run), and the run succeeds marked incomplete. Nothing changed:
        the stop stands, as without `publish_incomplete`."""
        try:
            self._take_snapshot()
        except Stop as problem:
            if problem.outcome == "no_changes":
                raise stopped from None
            raise Stop(problem.outcome, messages.INCOMPLETE_CHECK_FAILED.format(
                stop=stopped.reason, problem=problem.reason)) from None
        log.info("run %s: publishing what the stopped agent left, marked incomplete", self.spec.run_id)
        try:
            outcome, _ = self._publish()
        except Stop as problem:
            raise Stop(problem.outcome, messages.INCOMPLETE_CHECK_FAILED.format(
                stop=stopped.reason, problem=problem.reason)) from None
        self.state.incomplete = True
        return outcome, stopped.reason

    def _run_agent(self) -> Stop | None:
        """Run the agent. Raises Stop when the run ends here; returns the Stop of an agent cut short by its timeout
        or budget when what it left is to be published incomplete (`publish_incomplete`), else None."""
        spec, ws = self.spec, self.workspace
        adapter = get_adapter(spec.agent.adapter)
        transcript = TailBuffer(spec.transcript_limit_bytes)
        stdout = TailBuffer(max(STDOUT_PARSE_LIMIT, spec.transcript_limit_bytes))
        sandbox = self._sandbox("the agent", transcript)
        context = AgentContext(agent=spec.agent, workdir=ws.repo, prompt_file=ws.prompt, home=ws.home,
                               env=self._environment(), sandboxed=sandbox is not None, max_cost_usd=spec.max_cost_usd)
        try:
            invocation = adapter.invocation(context)
        except CommandError as exc:
            raise Stop("failed", str(exc)) from None
        _write_home_files(ws.home, invocation.files)
        env = self._environment(invocation.env)
        log.info("run %s: running agent %s (%s)", spec.run_id, spec.agent.name, spec.agent.adapter)
        watchdog = Watchdog(idle_seconds=spec.idle_timeout_seconds, watch=(ws.repo, ws.home), outputs=(transcript,),
                            waiting=only_waiting)
        meter = None
        if spec.max_cost_usd is not None and adapter.running_cost is not None:
            meter = CostMeter(limit=spec.max_cost_usd, output=transcript, read=adapter.running_cost)
        outcome = run_process(invocation.argv, cwd=ws.repo, env=env, timeout=spec.timeout_seconds,
                              cancel=self.cancel, stdout=(transcript, stdout), stderr=(transcript,),
                              stdin=invocation.stdin, sandbox=sandbox, watchdog=watchdog, meter=meter)
        self.state.transcript = transcript.text()
        output = AgentOutput(exit_code=outcome.exit_code, stdout=stdout.text(note=False),
                             transcript=transcript.text(note=False))
        report = adapter.parse(output)
        self.state.agent = report
        if self.spec.judge is not None:
            self.state.stdout = output.stdout[-(JUDGE_ANSWER_CHARS + 1):]
        reason = _agent_failure(outcome, report, spec.timeout_seconds)
        if outcome.idle:
            reason = messages.AGENT_IDLE.format(seconds=spec.idle_timeout_seconds,
                                                cause=idle_cause(self.redact(output.transcript)))
        over_budget = (spec.max_cost_usd is not None and not outcome.cancelled
                       and (outcome.over_budget is not None or report.budget_reached))
        if over_budget and spec.max_cost_usd is not None:
            spent = outcome.over_budget if outcome.over_budget is not None else report.usage.cost_usd
            reason = messages.AGENT_OVER_BUDGET.format(
                limit=f"${spec.max_cost_usd:,.2f}",
                spent=messages.AGENT_OVER_BUDGET_SPENT.format(cost=f"${spent:,.2f}") if spent is not None else "")
        self.reporter.send("agent_done", detail=self.redact(reason or f"exit 0 after {outcome.duration_seconds:.1f} s"))
        if outcome.cancelled:
            raise Stop("cancelled", "cancelled while the agent was running")
        stop: Stop | None = None
        if outcome.timed_out:
            stop = Stop("timed_out", reason)
        elif over_budget:
            stop = Stop("failed", reason)
        elif reason:
            raise Stop("failed", reason)
        if stop is None:
            return None
        # Half a change only ever goes to a new branch: never pushed onto one a pull request already shows.
        if spec.publish_incomplete and spec.output == "pr" and spec.checkout == "base":
            return stop
        raise stop

    def _sandbox(self, what: str, transcript: TailBuffer) -> SandboxPolicy | None:
        """The agent phase's sandbox, probed once per run; None (said in the transcript) when `auto` falls back.

        Stop when the spec requires the sandbox and it does not work here.
        """
        if self._sandbox_decision is None:
            ws, spec = self.workspace, self.spec
            policy = workspace_policy(agent=ws.agent, repo=ws.repo, home=ws.home, tmp=ws.tmp, prompt=ws.prompt,
                                      root=ws.root, hidden=spec.sandbox_hide, network=spec.agent.network,
                                      bwrap=self.source_env.get(BWRAP_ENV) or DEFAULT_BWRAP)
            self._sandbox_decision = decide(spec.sandbox, policy)
        decision = self._sandbox_decision
        if decision.refused:
            raise Stop("failed", messages.SANDBOX_REQUIRED.format(reason=decision.reason))
        if decision.policy is None and self.spec.sandbox != "off":
            log.warning("run %s: running %s without a sandbox: %s", self.spec.run_id, what, decision.reason)
            transcript.write(messages.SANDBOX_SKIPPED.format(what=what, reason=decision.reason).encode())
        return decision.policy

    def _environment(self, fixed: Mapping[str, str] | None = None) -> dict[str, str]:
        dropped = [name for name in self.spec.agent.env if is_forbidden(name)]
        if dropped:
            log.warning("run %s: not passing %s to the agent", self.spec.run_id, ", ".join(dropped))
        env = agent_environment(self.source_env, self.spec.agent.env, home=self.workspace.home,
                                tmpdir=self.workspace.tmp, fixed=fixed)
        env[MARKER_ENV] = self.marker
        return env

    def _check_changes(self, changed: list[str], after: Entries) -> None:
        spec = self.spec
        if spec.output == "report" and spec.report_path:
            entry = after.get(spec.report_path)
            if spec.report_path not in changed or entry is None or entry[0] not in REGULAR_MODES:
                raise Stop("failed", f"the agent did not write the report at {spec.report_path}")
            try:
                text = self.git.blob(entry[1]).decode("utf-8", errors="replace")
            except GitError as exc:
                raise Stop("failed", str(exc)) from None
            self.state.report = text[:REPORT_TEXT_LIMIT]
        if not changed:
            raise Stop("no_changes", "the agent changed no files")
        modes = {path: {entry[0] for entry in (self._before.get(path), after.get(path)) if entry} for path in changed}
        links = [path for path in changed if MODE_SYMLINK in modes[path]]
        gitlinks = [path for path in changed if MODE_GITLINK in modes[path]]
        hits = protected(changed, spec.protected_paths, containers=[*links, *gitlinks])
        if hits:
            raise Stop("failed", f"the agent changed protected paths: {_shown(hits)}; nothing was pushed")
        new_links = [path for path in links if after.get(path, ("",))[0] == MODE_SYMLINK]
        if new_links:
            raise Stop("failed", f"the agent made symbolic links, which Kickoff does not push: {_shown(new_links)}; "
                                 "nothing was pushed")
        new_gitlinks = [path for path in gitlinks if after.get(path, ("",))[0] == MODE_GITLINK]
        if new_gitlinks:
            raise Stop("failed", f"the agent added nested git repositories (gitlinks), which Kickoff does not push: "
                                 f"{_shown(new_gitlinks)}; nothing was pushed")
        if len(changed) > spec.max_changed_files:
            raise Stop("failed", f"the agent changed {len(changed)} files, more than the limit of "
                                 f"{spec.max_changed_files}; nothing was pushed")

    def _verify(self, command: str) -> None:
        spec = self.spec
        argv = shlex.split(command)
        output = TailBuffer(spec.transcript_limit_bytes)
        log.info("run %s: verifying with %s", spec.run_id, argv[0])
        outcome = run_process(argv, cwd=self.workspace.repo, env=self._environment(),
                              timeout=spec.verify_timeout_seconds, cancel=self.cancel, stdout=(output,),
                              stderr=(output,), sandbox=self._sandbox("verify", output))
        tail = output.text()
        if outcome.start_error:
            tail = f"{tail}cannot start the verify command: {outcome.start_error}\n"
        elif outcome.timed_out:
            tail = f"{tail}[verify did not finish within {spec.verify_timeout_seconds} s and was stopped]\n"
        self.state.verify = VerifyResult(command=command, exit_code=outcome.exit_code,
                                         passed=outcome.exit_code == 0, output_tail=self.redact(tail))
        self.reporter.send("verify_done", detail="passed" if self.state.verify.passed else
                           f"failed (exit {outcome.exit_code})")
        if outcome.cancelled:
            raise Stop("cancelled", "cancelled while verifying")


def _stdout_answer(stdout: str) -> str:
    """A judge's answer from its output when its adapter read no final message (`command`, aider): the JSON
    object the output ends with, or else all of it (which bot.ranking then rejects, saying why)."""
    found = trailing_json_object(stdout)
    return json.dumps(found, ensure_ascii=False) if found is not None else stdout.strip()


def _agent_failure(outcome: ProcessResult, report: AgentReport, timeout: int) -> str | None:
    if outcome.start_error:
        return f"could not start the agent: {outcome.start_error}"
    if outcome.cancelled:
        return "cancelled"
    if outcome.timed_out:
        return f"the agent did not finish within {timeout} s and was stopped"
    if outcome.exit_code:
        detail = f": {report.error}" if report.error else ""
        return f"the agent exited with code {outcome.exit_code}{detail}"
    return report.error


def _write_home_files(home: Path, files: Mapping[str, str]) -> None:
    """An adapter's settings files, under the agent's HOME only (0600, directories 0700)."""
    root = home.resolve()
    for relative, content in files.items():
        target = (root / relative).resolve()
        if root not in target.parents:
            raise Stop("failed", f"runner error: the adapter's file {relative} is outside the agent's HOME")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(content)


_ENDPOINT_WORDS: Final = ("reconnect", "econnrefused", "connection refused", "enotfound", "could not resolve",
                          "timed out", "timeout", "fetch failed", "network", "unreachable", "stream disconnected",
                          "error sending request", "connect error", "retrying")
_LOGIN_WORDS: Final = ("login", "log in", "sign in", "signin", "authenticat", "api key", "api_key", "oauth",
                       "browser", "credential", "unauthorized", "401")


_RETRY_WORDS: Final = ("reconnecting", "retrying", "econnrefused", "connection refused", "error sending request",
                       "stream disconnected", "waiting for authentication")


def only_waiting(line: str) -> bool:
    """Whether an output line only says the agent is waiting (retrying an endpoint, waiting for a login): the
    watchdog does not take it for progress, so a CLI retrying a dead endpoint forever is stopped too."""
    lowered = line.lower()
    return any(word in lowered for word in _RETRY_WORDS)


def idle_cause(transcript: str) -> str:
    """The likely cause of an agent's silence, from the last line it printed."""
    lines = [line.strip() for line in transcript.splitlines() if line.strip() and not line.startswith("[kickoff")]
    if lines:
        last = lines[-1]
        shown = last if len(last) <= 200 else last[:199] + "…"
        lowered = last.lower()
        if any(word in lowered for word in _LOGIN_WORDS):
            return messages.AGENT_IDLE_LOGIN.format(line=shown)
        if any(word in lowered for word in _ENDPOINT_WORDS):
            return messages.AGENT_IDLE_ENDPOINT.format(line=shown)
    return messages.AGENT_IDLE_UNKNOWN


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")


def _changed(before: Entries, after: Entries) -> list[str]:
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def write_result(path: Path, result: RunResult) -> None:
    """Write the result atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def _configure_logging() -> None:
    from bot.logs import configure_logging

    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    configure_logging(level if level in logging.getLevelNamesMapping() else "INFO")


def main(spec_path: Path, result_path: Path | None = None, workspace: Path | None = None) -> int:
    """Run the program; returns the exit code (0: an outcome was reached, 2: unusable spec or environment)."""
    with cancellation() as cancel:
        secrets = take_secrets()
        _configure_logging()
        # Kickoff lowered this session already where it could; a runner started otherwise (or refused by the
        # kernel's rate limit) does it here. Git and the agent's sandbox inherit it.
        priority.lower_runner(what="runner")
        try:
            spec = load_spec(spec_path, secrets)
            if spec.report_url is not None and not secrets.run_secret:
                raise BadInput(f"{ENV_RUN_SECRET} is not set, but the spec has a report_url")
            ws = prepare_workspace(workspace, spec.run_id)
        except BadInput as exc:
            print(f"kickoff: {secrets.redact(str(exc))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not secrets.git_token:
            log.warning("run %s: %s is not set; cloning and pushing without credentials", spec.run_id,
                        ENV_GIT_TOKEN)
        result_file = result_path or ws.root / "result.json"
        result = Run(spec, secrets, ws, result_file, os.environ, cancel).execute()
    reason = f": {result.reason}" if result.reason else ""
    print(f"run {spec.run_id}: {result.outcome}{reason} (result in {result_file})")
    return EXIT_OK
