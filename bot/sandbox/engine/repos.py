"""Repositories and their git: creation, roles, branch protection, and what GitHub does after a push."""

from __future__ import annotations

from typing import Literal

from bot.sandbox import payloads as P
from bot.sandbox.engine.base import Json, Part, RefUpdate, identity_of
from bot.sandbox.git import ZERO_SHA, BareRepo
from bot.sandbox.state import (
    ROLE_RANK,
    Label,
    Protection,
    Repo,
    RoleName,
    User,
)


class Repos(Part):
    """Repositories backed by bare git repositories, and the `push` that follows every ref move."""

    async def create_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str] | None = None,
        *,
        default_branch: str = "main",
        private: bool = True,
        description: str | None = None,
        owner_type: Literal["User", "Organization"] = "User",
    ) -> int:
        """A repository backed by a real bare git repository, with one initial commit holding `files`."""
        if self.state.repo(owner, name) is not None:
            raise ValueError(f"repository {owner}/{name} exists")
        account = self.engine.user(owner, kind=owner_type)
        now = self.clock()
        path = self.engine.repos_root / account.login / f"{name}.git"
        repo = Repo(
            id=self.state.ids.next("repo"),
            owner=account,
            name=name,
            private=private,
            default_branch=default_branch,
            path=path,
            created_at=now,
            updated_at=now,
            pushed_at=now,
            description=description,
        )
        repo.roles[account.login] = "admin"
        bare = self.engine.git(repo)
        await bare.init(default_branch)
        await bare.commit_files(
            default_branch,
            dict(files or {"README.md": f"# {name}\n"}),
            "Initial commit",
            author=identity_of(account),
            committer=identity_of(account),
            when=now,
        )
        self.state.repos[repo.full_name.lower()] = repo
        for label_name, color in (("bug", "d73a4a"), ("enhancement", "a2eeef"), ("documentation", "0075ca")):
            repo.labels[label_name] = Label(self.state.ids.next("label"), label_name, color, default=True)
        return repo.id

    async def set_permission(self, owner: str, repo: str, user: str, level: RoleName) -> None:
        """Make `user` a collaborator with a role (admin, maintain, write, triage, read) or remove them (none)."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(user)
        if level not in ROLE_RANK:
            raise ValueError(f"unknown permission level {level!r}")
        if level == "none":
            target.roles.pop(who.login, None)
        else:
            target.roles[who.login] = level

    def role_of(self, repo: Repo, who: User) -> RoleName:
        role = repo.roles.get(who.login)
        if role is not None:
            return role
        return "read" if not repo.private else "none"

    def association(self, repo: Repo, who: User) -> str:
        if who.id == repo.owner.id:
            return "OWNER"
        if who.login in repo.roles:
            return "MEMBER" if repo.owner.type == "Organization" else "COLLABORATOR"
        return "NONE"

    async def protect_branch(
        self,
        owner: str,
        repo: str,
        branch: str,
        *,
        required_checks: list[str] | None = None,
        strict: bool = False,
        required_approvals: int = 0,
    ) -> None:
        """Branch protection the merge button respects: required checks, up to date with base, approvals."""
        target = self.engine.find_repo(owner, repo)
        target.protection[branch] = Protection(list(required_checks or []), strict, required_approvals)

    async def push_commit(
        self,
        owner: str,
        repo: str,
        branch: str,
        files: dict[str, str | None],
        message: str = "Update files",
        *,
        author: str | None = None,
        base: str | None = None,
    ) -> str:
        """Commit files (None deletes) on a branch, creating it from `base` (default branch) when new; as a push."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(author) if author else target.owner
        bare = self.engine.git(target)
        async with self.engine.repo_lock(target):
            old = await bare.ref_sha(f"refs/heads/{branch}")
            parent = old
            if parent is None:
                parent = await bare.resolve(base or target.default_branch)
                if parent is None:
                    raise KeyError(f"no base {base!r} in {target.full_name}")
            ident = identity_of(who)
            sha = await bare.commit_files(
                branch, dict(files), message, author=ident, committer=ident, when=self.clock(), parent=parent
            )
        await self.after_push(target, [RefUpdate(f"refs/heads/{branch}", old or ZERO_SHA, sha)], who)
        return sha

    async def after_push(self, repo: Repo, updates: list[RefUpdate], pusher: User) -> None:
        """What GitHub does after refs move: `push` webhooks, PR synchronize/close, CI."""
        if not updates:
            return
        now = self.clock()
        repo.pushed_at = now
        repo.updated_at = now
        bare = self.engine.git(repo)
        for upd in updates:
            await self._announce_push(repo, bare, upd, pusher)
            if not upd.ref.startswith("refs/heads/"):
                continue
            branch = upd.ref.removeprefix("refs/heads/")
            for iss in list(repo.issues.values()):
                pr = iss.pull
                if pr is None or iss.state != "open" or pr.head_ref != branch:
                    continue
                if upd.new == ZERO_SHA:
                    pr.frozen_head_sha = upd.old
                    await self.engine.issues.close(repo, iss, pusher)
                    continue
                await self.engine.pulls.emit_pull(
                    repo, iss, "synchronize", pusher, extra={"before": upd.old, "after": upd.new}
                )
                self.engine.ci.start_ci(repo, upd.new, branch)

    async def _announce_push(self, repo: Repo, bare: BareRepo, upd: RefUpdate, pusher: User) -> None:
        created, deleted = upd.old == ZERO_SHA, upd.new == ZERO_SHA
        commits: list[Json] = []
        head_commit: Json | None = None
        forced = False
        if not deleted:
            if created:
                others = [sha for ref, sha in (await bare.refs("refs/heads/")).items() if ref != upd.ref]
                shas = await bare.rev_list(None, upd.new) if not others else []
                if others:
                    res = await bare.git("rev-list", "--reverse", upd.new, *[f"^{o}" for o in others])
                    shas = res.text.split()
            else:
                forced = not await bare.is_ancestor(upd.old, upd.new)
                shas = await bare.rev_list(upd.old, upd.new)
            for sha in shas[-20:]:
                commits.append(await self._push_commit_json(repo, bare, sha))
            head_commit = commits[-1] if commits else await self._push_commit_json(repo, bare, upd.new)
        repo_json = P.repository(self.urls, repo)
        repo_json["created_at"] = int(repo.created_at.timestamp())
        repo_json["pushed_at"] = int(repo.pushed_at.timestamp())
        repo_json["stargazers"] = 0
        repo_json["master_branch"] = repo.default_branch
        if repo.owner.type == "Organization":
            repo_json["organization"] = repo.owner.login
        ident = identity_of(pusher)
        body: Json = {
            "ref": upd.ref,
            "before": upd.old,
            "after": upd.new,
            "created": created,
            "deleted": deleted,
            "forced": forced,
            "base_ref": None,
            "compare": f"{self.urls.repo_html(repo)}/compare/{upd.old[:12]}...{upd.new[:12]}",
            "commits": commits,
            "head_commit": head_commit,
            "repository": repo_json,
            "pusher": {"name": pusher.login, "email": ident.email},
        }
        self.engine.emit("push", None, repo, body, pusher, keep_repository=True)

    async def _push_commit_json(self, repo: Repo, bare: BareRepo, sha: str) -> Json:
        info = await bare.commit_info(sha)
        added: list[str] = []
        removed: list[str] = []
        modified: list[str] = []
        if info.parents:
            for change in await bare.changed_files(info.parents[0], sha):
                {"added": added, "removed": removed}.get(change.status, modified).append(change.filename)
        else:
            res = await bare.git("ls-tree", "-r", "--name-only", sha)
            added = res.text.splitlines()
        logins = {identity_of(u).email.lower(): u.login for u in self.state.users.values()}
        return P.push_commit(self.urls, repo, info, added, removed, modified, logins)
