"""Git for the runner: clone with a token that never touches disk or argv, and commit and push what the agent left.

The token reaches git only through the environment of the git process, read by an askpass helper script that holds
no secret. No user or system git config is read; hooks and fsmonitor are off; before anything runs after the agent,
`.git/config` is put back as it was after the clone, so an agent cannot redirect the push or install a credential
helper. Commits are built from the work tree onto the base commit recorded before the agent ran (`commit-tree`),
so commits the agent made itself cannot hide a change from the checks.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from bot.runs.spec import ENV_GIT_TOKEN, CommitIdentity

GIT_TIMEOUT_SECONDS: Final = 600
TRAILER: Final = "Kickoff-Run"
USERNAME: Final = "x-access-token"  # what GitHub expects with an installation token

ASKPASS_SCRIPT: Final = f"""#!/bin/sh
# Kickoff's git credential prompt. It holds no secret: the token comes from git's environment, per call.
case "$1" in
  [Uu]sername*) printf '%s\\n' '{USERNAME}' ;;
  *) printf '%s\\n' "${{{ENV_GIT_TOKEN}:-}}" ;;
esac
"""

# Only these reach git from the runner's environment (proxies and CA bundles that a backend may need).
PASSTHROUGH_ENV: Final = (
    "PATH", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
    "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
)
SAFE_CONFIG: Final = (
    "-c", "credential.helper=",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "protocol.ext.allow=never",
)

Entries = dict[str, tuple[str, str]]  # path → (mode, object id)


class GitError(Exception):
    """A git command failed; the message is redacted and short enough for a run's reason."""


class Git:
    def __init__(self, *, workspace: Path, repo: Path, source_env: Mapping[str, str], token: str | None,
                 redact: Callable[[str], str]) -> None:
        self.workspace = workspace
        self.repo = repo
        self._token = token
        self._redact = redact
        self._home = workspace / "git-home"
        self._home.mkdir(exist_ok=True)
        self._askpass = workspace / "bin" / "git-askpass"
        self._askpass.parent.mkdir(exist_ok=True)
        self._askpass.write_text(ASKPASS_SCRIPT)
        self._askpass.chmod(stat.S_IRWXU)
        self._index = workspace / "kickoff.index"
        self._config: bytes | None = None
        self._base_env = {name: source_env[name] for name in PASSTHROUGH_ENV if name in source_env}

    def env(self, *, with_token: bool = False, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            **self._base_env,
            "HOME": str(self._home),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(self._askpass),
            "GIT_NO_REPLACE_OBJECTS": "1",
        }
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if with_token and self._token:
            env[ENV_GIT_TOKEN] = self._token
        env.update(extra or {})
        return env

    def run(self, *args: str, cwd: Path | None = None, with_token: bool = False, input: str | None = None,
            extra_env: Mapping[str, str] | None = None, what: str | None = None) -> str:
        """Run `git SAFE_CONFIG args…` and return stdout; GitError with git's own (redacted) words on failure."""
        argv = ["git", *SAFE_CONFIG, *args]
        label = what or f"git {args[0]}"
        try:
            done = subprocess.run(argv, cwd=cwd or self.repo, env=self.env(with_token=with_token, extra=extra_env),
                                  input=input, capture_output=True, text=True, errors="replace",
                                  timeout=GIT_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise GitError(f"{label} did not finish within {GIT_TIMEOUT_SECONDS} s") from None
        except OSError as exc:
            raise GitError(f"{label}: cannot run git: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise GitError(f"{label} failed (exit {done.returncode}): {self.explain(done.stderr)}")
        return done.stdout

    def explain(self, stderr: str) -> str:
        """Git's error lines, redacted and bounded: what a reviewer needs to see why it failed."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("hint:")]
        wanted = [line for line in lines
                  if line.startswith(("fatal:", "error:", "remote:", "!")) or "rejected]" in line]
        text = " | ".join((wanted or lines)[-6:]) or "no message"
        return self._redact(text)[:1000]

    def clone(self, url: str, branch: str) -> None:
        """Shallow, single-branch clone of `branch` into the repo directory."""
        self.run("clone", "--depth", "1", "--single-branch", "--no-tags", "--branch", branch, "--", url,
                 str(self.repo), cwd=self.workspace, with_token=True, what=f"git clone of branch {branch}")

    def head(self) -> str:
        return self.run("rev-parse", "--verify", "HEAD^{commit}").strip()

    def save_config(self) -> None:
        """Remember .git/config as the runner left it (no credentials: the clone URL carries none)."""
        self._config = (self.repo / ".git" / "config").read_bytes()

    def restore(self) -> None:
        """Undo what an agent may have done to the repository's git configuration before git runs again."""
        git_dir = self.repo / ".git"
        if git_dir.is_symlink() or not git_dir.is_dir():
            raise GitError("the agent replaced the repository's .git directory")
        for name in ("config", "config.worktree", "commondir"):
            path = git_dir / name
            if path.is_symlink() or path.exists():
                path.unlink()
        if self._config is not None:
            (git_dir / "config").write_bytes(self._config)

    def stage(self, base: str, only: Sequence[str] | None = None) -> Entries:
        """Build a private index: the base commit's tree plus the work tree (all of it, or only `only`)."""
        extra = {"GIT_INDEX_FILE": str(self._index)}
        self._index.unlink(missing_ok=True)
        self.run("read-tree", base, extra_env=extra)
        if only is None:
            self.run("add", "--all", "--", ".", extra_env=extra)
        else:
            self.run("add", "--all", "--force", "--", *only, extra_env=extra)
        return self.entries(extra)

    def entries(self, extra_env: Mapping[str, str] | None = None) -> Entries:
        """path → (mode, object id) of an index (the repository's own unless GIT_INDEX_FILE is given)."""
        out = self.run("ls-files", "--stage", "-z", extra_env=extra_env)
        result: Entries = {}
        for record in out.split("\0"):
            if not record:
                continue
            info, _, path = record.partition("\t")
            mode, object_id, _stage = info.split(" ")
            result[path] = (mode, object_id)
        return result

    def write_tree(self) -> str:
        return self.run("write-tree", extra_env={"GIT_INDEX_FILE": str(self._index)}).strip()

    def commit(self, tree: str, parent: str, message: str, identity: CommitIdentity, run_id: int) -> str:
        """A commit of `tree` on `parent` by `identity`, with the `Kickoff-Run:` trailer."""
        message = self.run("interpret-trailers", "--if-exists", "replace", "--trailer", f"{TRAILER}: {run_id}",
                           input=message.strip() + "\n")
        people = {
            "GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email,
        }
        return self.run("commit-tree", tree, "-p", parent, "-F", "-", input=message, extra_env=people).strip()

    def push(self, url: str, commit: str, branch: str) -> None:
        """Push `commit` to `branch` at `url` (never forced: a follow-up must fast-forward)."""
        self.run("push", "--no-verify", "--", url, f"{commit}:refs/heads/{branch}", with_token=True,
                 what=f"git push to {branch}")
