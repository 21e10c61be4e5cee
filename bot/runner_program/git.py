"""Kickoff's own git: a private clone that holds the credential, and a credential-free copy for the agent.

The run token reaches git only through the environment of the trusted git processes (the clone and the push), as
an `http.<clone url>.extraHeader` given by `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`, the way
actions/checkout authenticates. There is no askpass script and no credential helper, so there is no file that an
agent could rewrite to be handed the token, and the header is scoped to the clone URL, with redirects off.

Trusted git never reads anything the agent phase could write: it runs by the absolute path resolved before the
agent started, with an explicit `--git-dir` (the private clone), no system or global config, a private HOME,
hooks and fsmonitor off, and the private clone's config rewritten from memory before every call. The private
clone's metadata is sealed after prepare (`seal`) and checked before anything is taken from the agent or pushed
(`check_sealed`): a change refuses the publish. Objects are not sealed: they are content-addressed, and the remote
recomputes every id it receives, so a planted object can make a push fail but never change what it contains.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from bot.runspec import CommitIdentity

log = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS: Final = 600
TRAILER: Final = "Kickoff-Run"
USERNAME: Final = "x-access-token"  # what GitHub expects with an installation token
MODE_SYMLINK: Final = "120000"
MODE_GITLINK: Final = "160000"

# Only these reach trusted git from the runner's environment (proxies and CA bundles that a backend may need).
PASSTHROUGH_ENV: Final = (
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
    "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
)
DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
SAFE_CONFIG: Final = (
    "-c", "credential.helper=",
    "-c", "core.askPass=",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.attributesFile=/dev/null",
    "-c", "protocol.ext.allow=never",
    "-c", "http.followRedirects=false",
    "-c", "push.recurseSubmodules=no",
    "-c", "submodule.recurse=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "commit.gpgSign=false",
)
EXCLUDES_FILE: Final = "excludes"
"""In the private directory: the snapshot's ignore patterns, rewritten before each use (so not sealed)."""
# Files by which a git directory can point somewhere else or pull in more configuration.
REDIRECTS: Final = ("commondir", "config.worktree", "gitdir")

_NO_USERNAME: Final = re.compile(r"could not read Username for '([^']*)': terminal prompts disabled")

Entries = dict[str, tuple[str, str]]  # path → (mode, object id)
Manifest = dict[str, tuple[str, ...]]


class GitError(Exception):
    """A git command failed; the message is redacted and short enough for a run's reason."""


class Tampered(Exception):
    """The private clone changed while the agent phase ran; nothing may be published from it."""


def trusted_path(source_env: Mapping[str, str], workspace: Path) -> str:
    """The runner's own PATH without relative entries or entries inside the workspace (which the agent writes)."""
    entries = []
    for entry in source_env.get("PATH", DEFAULT_PATH).split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        resolved = Path(entry).resolve()
        if resolved == workspace or workspace in resolved.parents:
            continue
        entries.append(entry)
    return os.pathsep.join(entries) or DEFAULT_PATH


class Git:
    """Trusted git for one run: everything happens in `private` unless a call names the agent's copy."""

    def __init__(self, *, private: Path, workspace: Path, source_env: Mapping[str, str], token: str | None,
                 clone_url: str, redact: Callable[[str], str]) -> None:
        self.private = private
        self.git_dir = private / "repo.git"
        self.clone_url = clone_url
        self._home = private / "home"
        self._home.mkdir(mode=0o700, exist_ok=True)
        self._index = private / "index"
        self._path = trusted_path(source_env, workspace)
        git = shutil.which("git", path=self._path)
        if git is None:
            raise GitError("git is not installed (or not on PATH)")
        self._git = str(Path(git).resolve())
        self._header = None
        if token:
            basic = base64.b64encode(f"{USERNAME}:{token}".encode()).decode()
            self._header = f"Authorization: Basic {basic}"
        header = self._header
        self._redact = (lambda text: redact(text.replace(header, "[redacted]"))) if header else redact
        self._config: bytes | None = None
        self._sealed: Manifest | None = None
        self._base_env = {name: source_env[name] for name in PASSTHROUGH_ENV if name in source_env}

    def env(self, *, with_token: bool = False, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            **self._base_env,
            "PATH": self._path,
            "HOME": str(self._home),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_SYSTEM": os.devnull,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
        }
        if with_token and self._header:
            env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{self.clone_url}.extraHeader",
                        "GIT_CONFIG_VALUE_0": self._header})
        env.update(extra or {})
        return env

    def run(self, *args: str, git_dir: Path | None = None, work_tree: Path | None = None, no_repo: bool = False,
            with_token: bool = False, input: str | None = None, extra_env: Mapping[str, str] | None = None,
            what: str | None = None) -> str:
        """Run `git --git-dir=… SAFE_CONFIG args…` (the private clone unless `git_dir` says otherwise, none with
        `no_repo`) and return stdout; GitError with git's own (redacted) words on failure."""
        target = git_dir or self.git_dir
        location: list[str] = []
        if not no_repo:
            if target == self.git_dir:
                self._pin()
            location.append(f"--git-dir={target}")
        if work_tree is not None:
            location.append(f"--work-tree={work_tree}")
        argv = [self._git, *location, *SAFE_CONFIG, *args]
        label = what or f"git {args[0]}"
        try:
            done = subprocess.run(argv, cwd=self.private, env=self.env(with_token=with_token, extra=extra_env),
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
        lines = [_explain_line(line) for line in lines]
        wanted = [line for line in lines
                  if line.startswith(("fatal:", "error:", "remote:", "!")) or "rejected]" in line]
        text = " | ".join((wanted or lines)[-6:]) or "no message"
        return self._redact(text)[:1000]

    # Prepare

    def clone(self, branch: str) -> str:
        """Shallow, single-branch bare clone of `branch` into the private directory; the commit it is at."""
        self.run("clone", "--bare", "--template=", "--depth", "1", "--single-branch", "--no-tags", "--branch",
                 branch, "--", self.clone_url, str(self.git_dir), no_repo=True, with_token=True,
                 what=f"git clone of branch {branch}")
        self._config = (self.git_dir / "config").read_bytes()
        return self.run("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").strip()

    def fetch_branch(self, branch: str, ref: str) -> str:
        """Fetch another branch's tip and its parent (read-only: a judge run reads the attempts) into `ref` of the
        private clone; the commit it is at."""
        self.run("fetch", "--no-tags", "--depth=2", "--", self.clone_url, f"+refs/heads/{branch}:{ref}",
                 with_token=True, what=f"git fetch of branch {branch}")
        return self.run("rev-parse", "--verify", f"{ref}^{{commit}}").strip()

    def diff_text(self, old: str, new: str) -> str:
        """The patch from `old` to `new` (no colour, no external diff or text conversion the repository asks for)."""
        return self.run("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", old, new,
                        what="git diff")

    def tree_entries(self, commit: str) -> Entries:
        """path → (mode, object id) of every entry in `commit`'s tree."""
        return _entries(self.run("ls-tree", "-r", "-z", "--full-tree", commit), object_field=2)

    def make_working_copy(self, dest: Path, commit: str, branches: Sequence[str], upstream: str) -> None:
        """A repository at `dest` with `commit` checked out on `branches[0]`, sharing no file with the private
        clone: its objects are copies, its only remote is the credential-free clone URL, and nothing reads its
        `.git` once the agent has run."""
        dest.mkdir(parents=True)
        agent_dir = dest / ".git"
        self.run("init", "--quiet", "--", str(dest), no_repo=True)
        shutil.copytree(self.git_dir / "objects", agent_dir / "objects", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("alternates", "http-alternates"))
        shallow = self.git_dir / "shallow"
        if shallow.is_file():
            shutil.copyfile(shallow, agent_dir / "shallow")
        for branch in dict.fromkeys(branches):
            self.run("update-ref", f"refs/heads/{branch}", commit, git_dir=agent_dir)
        self.run("update-ref", f"refs/remotes/origin/{upstream}", commit, git_dir=agent_dir)
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branches[0]}", git_dir=agent_dir)
        self.run("config", "remote.origin.url", self.clone_url, git_dir=agent_dir)
        self.run("config", "remote.origin.fetch", f"+refs/heads/{upstream}:refs/remotes/origin/{upstream}",
                 git_dir=agent_dir)
        self.run("read-tree", "--reset", "-u", "HEAD", git_dir=agent_dir, work_tree=dest, what="git checkout")

    def seal(self) -> None:
        """Record the private clone's metadata as prepare left it."""
        self._sealed = self._manifest()

    def check_sealed(self) -> None:
        """Tampered when the private clone is not exactly as `seal` recorded it (apart from new objects)."""
        if self._sealed is None:
            raise Tampered("the private clone was never sealed")
        info = self.private.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise Tampered("the private directory was replaced or opened to others")
        now = self._manifest()
        changed = sorted(path for path in now.keys() | self._sealed.keys() if now.get(path) != self._sealed.get(path))
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise Tampered(f"the private clone was changed during the agent phase ({shown})")

    def _manifest(self) -> Manifest:
        """Every entry under the private directory but the index and the objects (apart from objects/info)."""
        manifest: Manifest = {}
        objects = self.git_dir / "objects"
        for top, dirs, files in os.walk(self.private):
            here = Path(top)
            for name in [*dirs, *files]:
                path = here / name
                if here == self.private and (name.startswith("index") or name == EXCLUDES_FILE):
                    continue
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    entry: tuple[str, ...] = ("link", os.readlink(path))
                elif stat.S_ISDIR(info.st_mode):
                    entry = ("dir", oct(stat.S_IMODE(info.st_mode)))
                elif stat.S_ISREG(info.st_mode):
                    entry = ("file", oct(stat.S_IMODE(info.st_mode)), _sha256(path))
                else:
                    entry = ("special", oct(info.st_mode))
                if entry[0] in ("dir", "file") and _under(path, objects) and not _under(path, objects / "info"):
                    continue  # the snapshot adds objects; a planted one cannot change what an id names
                manifest[path.relative_to(self.private).as_posix()] = entry
        return manifest

    def _pin(self) -> None:
        """Put the private clone's config back as the clone left it, and drop any file that redirects it."""
        if self._config is None:
            return
        for name in REDIRECTS:
            path = self.git_dir / name
            if path.is_symlink() or path.exists():
                path.unlink()
        config = self.git_dir / "config"
        if config.is_symlink():
            config.unlink()
        config.write_bytes(self._config)

    # Publish

    def snapshot(self, work_tree: Path, base: str, only: Sequence[str] | None = None,
                 exclude: Sequence[str] = ()) -> Entries:
        """The base commit's tree plus the agent's work tree (all of it, or only `only`), in a private index
        whose blobs are written into the private clone. The agent's `.git` is never read. An untracked file
        matching an `exclude` pattern (gitignore syntax: agent CLIs' scratch files) is left out."""
        extra = {"GIT_INDEX_FILE": str(self._index)}
        for stale in (self._index, self._index.with_name("index.lock")):
            if stale.is_symlink() or stale.exists():
                stale.unlink()
        self.run("read-tree", base, extra_env=extra)
        if only is None:
            excludes = self.private / EXCLUDES_FILE  # written anew here, after the agent is gone
            if excludes.is_symlink() or excludes.exists():
                excludes.unlink()
            excludes.write_text("".join(f"{pattern}\n" for pattern in exclude), encoding="utf-8")
            self.run("-c", f"core.excludesFile={excludes}", "add", "--all", "--", ".", work_tree=work_tree,
                     extra_env=extra, what="git add")
        else:
            self.run("add", "--all", "--force", "--", *only, work_tree=work_tree, extra_env=extra, what="git add")
        return _entries(self.run("ls-files", "--stage", "-z", extra_env=extra), object_field=1)

    def write_tree(self) -> str:
        return self.run("write-tree", extra_env={"GIT_INDEX_FILE": str(self._index)}).strip()

    def diff_size(self, base: str, tree: str) -> tuple[int, int]:
        """Lines added and removed from `base` to `tree` (git's numstat, no rename detection; a binary file
        counts 0)."""
        out = self.run("diff-tree", "-r", "--numstat", "--no-renames", "-z", base, tree, what="git diff-tree")
        added = removed = 0
        for record in out.split("\0"):
            fields = record.split("\t")
            if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
                added += int(fields[0])
                removed += int(fields[1])
        return added, removed

    def blob(self, object_id: str) -> bytes:
        """The content of a blob in the private clone."""
        argv = [self._git, f"--git-dir={self.git_dir}", *SAFE_CONFIG, "cat-file", "blob", object_id]
        self._pin()
        done = subprocess.run(argv, cwd=self.private, env=self.env(), capture_output=True,
                              timeout=GIT_TIMEOUT_SECONDS, check=False)
        if done.returncode != 0:
            raise GitError(f"git cat-file failed (exit {done.returncode}): "
                           f"{self.explain(done.stderr.decode(errors='replace'))}")
        return done.stdout

    def commit(self, tree: str, parent: str, message: str, identity: CommitIdentity, run_id: int) -> str:
        """A commit of `tree` on `parent` by `identity`, with the `Kickoff-Run:` trailer."""
        message = self.run("interpret-trailers", "--if-exists", "replace", "--trailer", f"{TRAILER}: {run_id}",
                           input=message.strip() + "\n")
        people = {
            "GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email,
        }
        return self.run("commit-tree", tree, "-p", parent, "-F", "-", input=message, extra_env=people).strip()

    def push(self, commit: str, branch: str) -> None:
        """Push `commit` to `branch` at the clone URL (never forced: a follow-up must fast-forward)."""
        self.run("push", "--no-verify", "--", self.clone_url, f"{commit}:refs/heads/{branch}", with_token=True,
                 what=f"git push to {branch}")


def _explain_line(line: str) -> str:
    # Without an askpass, a refused token ends in git asking for a username it cannot read.
    match = _NO_USERNAME.search(line)
    if match:
        return f"fatal: Authentication failed for '{match.group(1)}': the remote refused the run's credentials"
    return line


def _under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _entries(out: str, *, object_field: int) -> Entries:
    """path → (mode, object id) from `-z` output whose records are `<fields>\t<path>` with the mode first and the
    object id at `object_field` (`ls-tree`: mode type id; `ls-files --stage`: mode id stage)."""
    result: Entries = {}
    for record in out.split("\0"):
        if record:
            info, _, path = record.partition("\t")
            fields = info.split(" ")
            result[path] = (fields[0], fields[object_field])
    return result
