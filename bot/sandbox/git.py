"""Real git on bare repositories, always through asyncio subprocesses so the engine loop never blocks.

Merges use `git merge-tree --write-tree` (git's own ort merge, the same machinery as `git merge`) followed by
`commit-tree` and a compare-and-swap `update-ref`: the result is a real merge commit, computed without a working
tree, and a concurrent push can never be overwritten. Rebases replay commits with `cherry-pick` in a throw-away
worktree.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ZERO_SHA = "0" * 40


class GitError(Exception):
    """A git command failed; carries its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


GITHUB_IDENTITY = Identity("GitHub", "noreply@github.com")

# GitHub refuses a push that touches workflow files unless the App's token holds the `workflows` permission; the
# git endpoint sets SANDBOX_DENY_WORKFLOWS for such tokens.
PRE_RECEIVE = """#!/bin/sh
[ -n "$SANDBOX_DENY_WORKFLOWS" ] || exit 0
status=0
while read -r old new ref; do
    [ "$new" = "0000000000000000000000000000000000000000" ] && continue
    for path in $(git log --format= --name-only "$new" --not --branches --tags | grep '^\\.github/workflows/' \\
                  | sort -u); do
        printf 'refusing to allow a GitHub App to create or update workflow `%s` ' "$path"
        echo 'without `workflows` permission'
        status=1
    done
done
exit $status
"""


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Identity
    author_date: datetime
    committer: Identity
    committer_date: datetime
    message: str


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    sha: str
    size: int
    path: str


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str  # GitHub's words: added, removed, modified, renamed, copied, changed
    sha: str
    additions: int
    deletions: int
    patch: str | None
    previous_filename: str | None = None


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every git child: no user or system config, no prompts, nothing inherited from GIT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def _date_env(prefix: str, who: Identity, when: datetime) -> dict[str, str]:
    return {
        f"GIT_{prefix}_NAME": who.name,
        f"GIT_{prefix}_EMAIL": who.email,
        f"GIT_{prefix}_DATE": f"@{int(when.timestamp())} +0000",
    }


def identity_env(author: Identity, committer: Identity, when: datetime) -> dict[str, str]:
    return {**_date_env("AUTHOR", author, when), **_date_env("COMMITTER", committer, when)}


async def run(
    args: list[str],
    *,
    git_dir: Path | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> GitResult:
    """Run one git command; raise GitError on a non-zero exit when `check`."""
    argv = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    argv += args
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=git_env(env),
    )
    out, err = await proc.communicate(input)
    rc = proc.returncode if proc.returncode is not None else -1
    if check and rc != 0:
        raise GitError(args, rc, err.decode("utf-8", "replace"))
    return GitResult(rc, out, err)


class BareRepo:
    """One bare repository on disk and the few git verbs the sandbox needs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def git(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None, check: bool = True
    ) -> GitResult:
        return await run(list(args), git_dir=self.path, input=input, env=env, check=check)

    async def init(self, default_branch: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await run(["init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(self.path)])
        # Accept pushes over smart HTTP and keep objects a push brings (no gc in the middle of a test).
        await self.git("config", "http.receivepack", "true")
        await self.git("config", "gc.auto", "0")
        hook = self.path / "hooks" / "pre-receive"
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)

    async def resolve(self, rev: str) -> str | None:
        """The commit a branch, tag, full ref or sha names, or None."""
        if not rev or rev.startswith("-") or ".." in rev:
            return None
        for candidate in (rev, f"refs/heads/{rev}", f"refs/tags/{rev}", f"refs/{rev}"):
            res = await self.git(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}", check=False
            )
            if res.returncode == 0:
                return res.text.strip()
        return None

    async def ref_sha(self, ref: str) -> str | None:
        """The value of one full ref (`refs/heads/main`), or None when it does not exist."""
        res = await self.git("rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False)
        return res.text.strip() if res.returncode == 0 else None

    async def refs(self, prefix: str = "refs/") -> dict[str, str]:
        res = await self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        out: dict[str, str] = {}
        for line in res.text.splitlines():
            name, _, sha = line.partition(" ")
            out[name] = sha
        return out

    async def branches(self) -> dict[str, str]:
        return {k.removeprefix("refs/heads/"): v for k, v in (await self.refs("refs/heads/")).items()}

    async def update_ref(self, ref: str, new: str, old: str | None = None) -> bool:
        """Set a ref, only if it still has `old` (ZERO_SHA: must not exist). False when someone moved it."""
        args = ["update-ref", ref, new] + ([old] if old is not None else [])
        res = await self.git(*args, check=False)
        return res.returncode == 0

    async def delete_ref(self, ref: str, old: str | None = None) -> bool:
        args = ["update-ref", "-d", ref] + ([old] if old is not None else [])
        res = await self.git(*args, check=False)
        return res.returncode == 0

    async def write_blob(self, data: bytes) -> str:
        return (await self.git("hash-object", "-w", "--stdin", input=data)).text.strip()

    async def commit_files(
        self,
        branch: str,
        files: dict[str, str | bytes | None],
        message: str,
        *,
        author: Identity,
        committer: Identity,
        when: datetime,
        parent: str | None = None,
    ) -> str:
        """Commit `files` (None deletes) on top of `parent` (default: the branch head) and move the branch."""
        ref = f"refs/heads/{branch}"
        current = await self.ref_sha(ref)
        base = parent if parent is not None else current
        with tempfile.TemporaryDirectory(prefix="sandbox-index-") as tmp:
            index_env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is not None:
                await self.git("read-tree", base, env=index_env)
            lines = []
            for name, content in files.items():
                if content is None:
                    lines.append(f"0 {ZERO_SHA}\t{name}")
                    continue
                data = content.encode() if isinstance(content, str) else content
                lines.append(f"100644 {await self.write_blob(data)}\t{name}")
            if lines:
                info = ("\n".join(lines) + "\n").encode()
                await self.git("update-index", "--index-info", input=info, env=index_env)
            tree = (await self.git("write-tree", env=index_env)).text.strip()
        sha = await self.commit_tree(tree, [base] if base else [], message, author, committer, when)
        if not await self.update_ref(ref, sha, current or ZERO_SHA):
            raise GitError(["update-ref", ref], 1, f"{ref} moved while committing")
        return sha

    async def commit_tree(
        self, tree: str, parents: list[str], message: str, author: Identity, committer: Identity, when: datetime
    ) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        res = await self.git(*args, input=message.encode(), env=identity_env(author, committer, when))
        return res.text.strip()

    async def commit_info(self, sha: str) -> CommitInfo:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"
        res = await self.git("show", "-s", f"--format={fmt}", sha, "--")
        parts = res.text.split("\x00", 9)
        return CommitInfo(
            sha=parts[0],
            tree=parts[1],
            parents=parts[2].split(),
            author=Identity(parts[3], parts[4]),
            author_date=datetime.fromtimestamp(int(parts[5]), UTC),
            committer=Identity(parts[6], parts[7]),
            committer_date=datetime.fromtimestamp(int(parts[8]), UTC),
            message=parts[9].rstrip("\n"),
        )

    async def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The tree entry at `path` in `commit` (the root tree when path is empty)."""
        path = path.strip("/")
        if not path:
            tree = (await self.git("rev-parse", f"{commit}^{{tree}}")).text.strip()
            return TreeEntry("040000", "tree", tree, 0, "")
        res = await self.git("ls-tree", "-l", "-z", "--full-tree", commit, "--", path, check=False)
        if res.returncode != 0:
            return None
        for item in _parse_ls_tree(res.stdout):
            if item.path == path:
                return item
        return None

    async def list_tree(self, tree_sha: str, prefix: str) -> list[TreeEntry]:
        res = await self.git("ls-tree", "-l", "-z", tree_sha)
        base = prefix.strip("/")
        return [
            TreeEntry(e.mode, e.type, e.sha, e.size, f"{base}/{e.path}" if base else e.path)
            for e in _parse_ls_tree(res.stdout)
        ]

    async def blob(self, sha: str) -> bytes:
        return (await self.git("cat-file", "blob", sha)).stdout

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        res = await self.git("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        return res.returncode == 0

    async def merge_base(self, a: str, b: str) -> str | None:
        res = await self.git("merge-base", a, b, check=False)
        if res.returncode != 0:
            return None
        return res.text.strip() or None

    async def rev_list(self, exclude: str | None, include: str, *, no_merges: bool = False) -> list[str]:
        """Commits reachable from `include` but not `exclude`, oldest first."""
        args = ["rev-list", "--reverse", *(["--no-merges"] if no_merges else []), include]
        args += [f"^{exclude}"] if exclude else []
        return (await self.git(*args)).text.split()

    async def merge_tree(self, ours: str, theirs: str) -> tuple[str | None, list[str]]:
        """Merge two commits in memory: (tree, []) when clean, (None, conflicted paths) otherwise."""
        res = await self.git(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs, check=False
        )
        if res.returncode not in (0, 1):
            raise GitError(["merge-tree", ours, theirs], res.returncode, res.stderr.decode())
        fields = [f for f in res.stdout.decode().split("\x00") if f]
        if res.returncode == 0:
            return fields[0], []
        return None, sorted(set(fields[1:]))

    async def changed_files(self, base: str, head: str) -> list[FileChange]:
        """What `head` changes relative to `base`, with GitHub's status words and per-file patches."""
        raw = await self.git("diff", "--raw", "-z", "--no-abbrev", "--find-renames", base, head)
        numstat = await self.git("diff", "--numstat", "-z", "--find-renames", base, head)
        patch = await self.git("diff", "--no-color", "--find-renames", base, head)
        counts = _parse_numstat(numstat.stdout)
        patches = _split_patch(patch.text)
        changes: list[FileChange] = []
        tokens = raw.stdout.decode("utf-8", "replace").split("\x00")
        i = 0
        words = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}
        while i < len(tokens) and tokens[i]:
            meta = tokens[i].lstrip(":").split()
            status = meta[4][0]
            new_sha = meta[3]
            if status in "RC":
                old_name, name = tokens[i + 1], tokens[i + 2]
                i += 3
            else:
                old_name, name = None, tokens[i + 1]
                i += 2
            adds, dels = counts.get(name, (0, 0))
            changes.append(
                FileChange(
                    filename=name,
                    status=words.get(status, "modified"),
                    sha=new_sha if status != "D" else meta[2],
                    additions=adds,
                    deletions=dels,
                    patch=patches.get(name),
                    previous_filename=old_name,
                )
            )
        return changes

    async def rebase(self, onto: str, commits: list[str], committer: Identity, when: datetime) -> str | None:
        """Replay `commits` onto `onto` in a throw-away worktree; the new tip, or None on a conflict."""
        with tempfile.TemporaryDirectory(prefix="sandbox-rebase-") as tmp:
            work = Path(tmp) / "w"
            await self.git("worktree", "add", "--quiet", "--detach", str(work), onto)
            try:
                for sha in commits:
                    info = await self.commit_info(sha)
                    env = {
                        **_date_env("COMMITTER", committer, when),
                        "GIT_AUTHOR_NAME": info.author.name,
                        "GIT_AUTHOR_EMAIL": info.author.email,
                        "GIT_AUTHOR_DATE": f"@{int(info.author_date.timestamp())} +0000",
                    }
                    res = await run(
                        ["cherry-pick", "--allow-empty", "--keep-redundant-commits", sha],
                        cwd=work,
                        env=env,
                        check=False,
                    )
                    if res.returncode != 0:
                        await run(["cherry-pick", "--abort"], cwd=work, check=False)
                        return None
                return (await run(["rev-parse", "HEAD"], cwd=work)).text.strip()
            finally:
                await self.git("worktree", "remove", "--force", str(work), check=False)
                await self.git("worktree", "prune", check=False)

    async def checkout(self, sha: str, dest: Path) -> None:
        """A fresh working copy of one commit (for CI), sharing this repository's objects."""
        await run(["clone", "--quiet", "--shared", "--no-checkout", str(self.path), str(dest)])
        await run(["checkout", "--quiet", "--detach", sha], cwd=dest)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _parse_ls_tree(data: bytes) -> list[TreeEntry]:
    out: list[TreeEntry] = []
    for rec in data.decode("utf-8", "replace").split("\x00"):
        if not rec:
            continue
        meta, _, path = rec.partition("\t")
        mode, typ, sha, size = meta.split()
        out.append(TreeEntry(mode, typ, sha, int(size) if size.isdigit() else 0, path))
    return out


def _parse_numstat(data: bytes) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    tokens = data.decode("utf-8", "replace").split("\x00")
    i = 0
    while i < len(tokens) and tokens[i]:
        adds, dels, name = tokens[i].split("\t", 2)
        if name == "":  # a rename: the two names follow
            name = tokens[i + 2]
            i += 3
        else:
            i += 1
        out[name] = (int(adds) if adds.isdigit() else 0, int(dels) if dels.isdigit() else 0)
    return out


def _split_patch(text: str) -> dict[str, str]:
    """Per-file hunks of a unified diff, keyed by the new file name (GitHub's `patch` field)."""
    out: dict[str, str] = {}
    chunks = text.split("\ndiff --git ")
    for chunk in chunks:
        lines = chunk.splitlines()
        name = None
        hunk_start = None
        for idx, line in enumerate(lines):
            if line.startswith("+++ "):
                target = line[4:]
                if target.startswith("b/"):
                    name = target[2:]
            elif line.startswith("--- ") and name is None:
                source = line[4:]
                if source.startswith("a/"):
                    name = source[2:]
            elif line.startswith("@@"):
                hunk_start = idx
                break
        if name is not None and hunk_start is not None:
            out[name] = "\n".join(lines[hunk_start:])
    return out
