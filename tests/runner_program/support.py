"""Test support for the runner program: a real bare repository as the remote, specs, the program as a subprocess,
and a report receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunReport, RunResult

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
PYTHON = sys.executable
BASE_FILES = {
    "README.md": "# demo\n",
    "src/app.py": "def answer() -> int:\n    return 41\n",
    ".github/workflows/ci.yml": "on: push\njobs: {}\n",
    ".gitignore": "*.log\n",
}
IDENTITY = {"name": "kickoff[bot]", "email": "123+kickoff[bot]@users.noreply.github.com"}


def new_token() -> str:
    """A credential with no recognisable shape, so only exact-value redaction can catch it."""
    return f"kt{secrets.token_hex(20)}"


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd or Path.cwd()), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "LANG": "C"}
    done = subprocess.run(["git", *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


@dataclass
class Remote:
    """A bare repository with one commit on `main`."""

    path: Path
    base_sha: str

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def branch_sha(self, branch: str) -> str | None:
        out = git("for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}", cwd=self.path).strip()
        return out or None

    def show(self, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.path)

    def log_message(self, ref: str) -> str:
        return git("log", "-1", "--format=%B", ref, cwd=self.path)

    def author(self, ref: str) -> str:
        return git("log", "-1", "--format=%an <%ae> / %cn <%ce>", ref, cwd=self.path).strip()

    def files(self, ref: str) -> list[str]:
        return git("ls-tree", "-r", "--name-only", ref, cwd=self.path).split()


def make_remote(tmp_path: Path, files: dict[str, str] | None = None, name: str = "remote.git") -> Remote:
    seed = tmp_path / f"seed-{name}"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    for rel, content in (files or BASE_FILES).items():
        target = seed / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git("add", "-A", cwd=seed)
    git("-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "initial", cwd=seed)
    bare = tmp_path / name
    git("clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return Remote(bare, git("rev-parse", "HEAD", cwd=seed).strip())


def script(name: str, *args: str) -> list[str]:
    """argv for the `command` adapter: one of tests/runner_program/scripts/ under this Python."""
    return [PYTHON, str(SCRIPTS / name), *args]


def make_spec(remote: Remote, command: list[str], **overrides: Any) -> dict[str, Any]:
    agent = {"name": "house", "adapter": "command", "command": command, "env": [], "model": None}
    agent.update(overrides.pop("agent", {}))
    spec: dict[str, Any] = {
        "run_id": 42,
        "repository": "octo/demo",
        "clone_url": remote.url,
        "base_branch": "main",
        "branch": "kickoff/7-fix-house-42",
        "task": "fix",
        "issue_number": 7,
        "agent": agent,
        "prompt": "Fix the answer in src/app.py.\n",
        "timeout_seconds": 60,
        "protected_paths": [".github/workflows/**", ".github/kickoff.yml"],
        "commit_identity": IDENTITY,
        "commit_message": "fix: the answer (#7)",
        # The scripts live in this checkout, which the sandbox does not show; tests/runner_program/test_sandbox.py runs
        # agents in it.
        "sandbox": "off",
    }
    spec.update(overrides)
    return spec


@dataclass
class Outcome:
    """What one run of the program left behind."""

    process: subprocess.CompletedProcess[str]
    workspace: Path
    result_path: Path

    @property
    def result(self) -> RunResult:
        return RunResult.model_validate_json(self.result_path.read_text())


def runner_env(token: str | None = None, run_secret: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KICKOFF_")}
    env["PYTHONPATH"] = str(ROOT)
    if token is not None:
        env[ENV_GIT_TOKEN] = token
    if run_secret is not None:
        env[ENV_RUN_SECRET] = run_secret
    env.update(extra)
    return env


def command_line(spec_path: Path, workspace: Path, result: Path | None = None) -> list[str]:
    argv = [PYTHON, "-m", "bot", "run-agent", "--spec", str(spec_path), "--workspace", str(workspace)]
    if result is not None:
        argv += ["--result", str(result)]
    return argv


def run_program(tmp_path: Path, spec: dict[str, Any], *, env: dict[str, str] | None = None,
                timeout: float = 120) -> Outcome:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    workspace = tmp_path / "ws"
    done = subprocess.run(command_line(spec_path, workspace), env=env or runner_env(), capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=tmp_path)
    return Outcome(done, workspace, workspace / "result.json")


def all_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path, path.read_bytes()


@dataclass
class Receiver:
    """Records the reports POSTed to it; `fail_first` answers that many requests with 503."""

    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reports(self) -> list[RunReport]:
        return [RunReport.model_validate_json(r["body"]) for r in self.requests if r["status"] == 200]

    def events(self) -> list[str]:
        return [report.event for report in self.reports()]


@contextmanager
def receiver(fail_first: int = 0) -> Iterator[Receiver]:
    state = Receiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            with state.lock:
                status = 503 if state.fail_first > 0 else 200
                state.fail_first -= 1
                state.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                       "status": status})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/runs/42/report"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (gone, or a zombie waiting for a reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}
