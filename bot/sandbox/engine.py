"""The sandbox's behaviour: every change GitHub would make (and announce) for REST calls, pushes and the control API.

All methods run on the engine loop. REST handlers (`api.py`), the git endpoint (`githttp.py`), the HTTP control
endpoints and the Python control API (`Sandbox`) all call these, so a label added through any of them emits the
same webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from bot.sandbox import payloads as P
from bot.sandbox.auth import check_token_request, generate_key_pair, new_installation_token, public_key_of
from bot.sandbox.ci import run_ci
from bot.sandbox.clock import Clock, iso
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.git import GITHUB_IDENTITY, ZERO_SHA, BareRepo, CommitInfo, GitError, Identity
from bot.sandbox.state import (
    ALL_EVENTS,
    EVENT_PERMISSION,
    ROLE_RANK,
    App,
    CheckRun,
    CheckSuite,
    CiConfig,
    Comment,
    CommitStatus,
    Delivery,
    Installation,
    Issue,
    Label,
    ManifestCode,
    Protection,
    PullRequest,
    Reaction,
    Repo,
    RequestRecord,
    Review,
    ReviewComment,
    ReviewState,
    RoleName,
    State,
    Token,
    User,
    node_id,
)
from bot.sandbox.webhooks import Outbox, build_delivery

Json = dict[str, Any]
TOKEN_LIFETIME = timedelta(hours=1)
MANIFEST_CODE_LIFETIME = timedelta(hours=1)
DEFAULT_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
FAILING = {"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale"}
PASSING = {"success", "neutral", "skipped"}
WebhookValidator = Callable[[str, str | None, Json], list[str]]


@dataclass(frozen=True)
class AppCredentials:
    """What a test or the demo needs to run an App against the sandbox."""

    app_id: int
    slug: str
    private_key_pem: str
    webhook_secret: str | None
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    old: str
    new: str


@dataclass
class Violation:
    """A request or webhook that does not match GitHub's description."""

    where: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: " + "; ".join(self.problems)


def _identity_of(who: User) -> Identity:
    return Identity(who.name or who.login, who.email or f"{who.id}+{who.login}@users.noreply.github.com")


class Engine:
    """State plus behaviour. Not thread-safe: use it from the engine loop only."""

    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0),
        webhook_timeout: float = 10.0,
    ) -> None:
        self.root = root
        self.repos_root = root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.state = State()
        self.urls = P.Urls("http://sandbox.invalid", "http://sandbox.invalid")
        self.outbox = Outbox(
            clock=clock, lookup_app=self.state.apps.get, retry_delays=retry_delays, timeout=webhook_timeout
        )
        self.requests: list[RequestRecord] = []
        self.violations: list[Violation] = []
        self.unimplemented: list[str] = []
        self.webhook_validator: WebhookValidator | None = None
        self._repo_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ci_running = 0
        self.ghost = self.user("ghost")
        self.ci_app = self._new_app(
            name="Sandbox CI",
            slug="sandbox-ci",
            owner=self.user("sandbox"),
            public_key_pem="",
            private_key_pem=None,
            webhook_url=None,
            webhook_secret=None,
            permissions={"checks": "write", "contents": "read", "metadata": "read", "statuses": "write"},
            events=[],
            internal=True,
        )

    # ---------------------------------------------------------------- users, apps, installations, tokens

    def user(self, login: str, *, kind: Literal["User", "Bot", "Organization"] | None = None) -> User:
        """The user with this login, created on first mention (`…[bot]` logins are bots)."""
        found = self.state.user(login)
        if found is not None:
            return found
        if kind is None:
            kind = "Bot" if login.endswith("[bot]") else "User"
        created = User(self.state.ids.next("user"), login, kind)
        self.state.users[login.lower()] = created
        return created

    def _new_app(
        self,
        *,
        name: str,
        slug: str,
        owner: User,
        public_key_pem: str,
        private_key_pem: str | None,
        webhook_url: str | None,
        webhook_secret: str | None,
        permissions: dict[str, str],
        events: list[str],
        internal: bool = False,
        description: str | None = None,
        external_url: str = "https://example.invalid",
    ) -> App:
        app_id = self.state.ids.next("app")
        bot = self.user(f"{slug}[bot]", kind="Bot")
        app = App(
            id=app_id,
            slug=slug,
            name=name,
            owner=owner,
            bot=bot,
            public_key_pem=public_key_pem,
            private_key_pem=private_key_pem,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            permissions=dict(permissions),
            events=list(events),
            client_id=f"Iv1.{secrets.token_hex(8)}",
            client_secret=secrets.token_hex(20),
            created_at=self.clock(),
            description=description,
            external_url=external_url,
            internal=internal,
        )
        self.state.apps[app_id] = app
        return app

    async def create_app(
        self,
        name: str = "Kickoff",
        *,
        slug: str | None = None,
        owner: str = "sandbox-admin",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        permissions: dict[str, str] | None = None,
        events: list[str] | None = None,
        public_key_pem: str | None = None,
        private_key_pem: str | None = None,
        description: str | None = None,
    ) -> AppCredentials:
        """Register an App and return its credentials.

        Give the App's `public_key_pem` (the sandbox then never sees the private key) or a `private_key_pem` to
        reuse; with neither, the sandbox makes a fresh key pair and hands out the private PEM.
        """
        private_pem = private_key_pem
        if private_pem is not None:
            public_key_pem = public_key_of(private_pem)
        elif public_key_pem is None:
            pair = await asyncio.to_thread(generate_key_pair)
            private_pem, public_key_pem = pair.private_pem, pair.public_pem
        slug = slug or name.lower().replace(" ", "-")
        if any(a.slug == slug for a in self.state.apps.values()):
            slug = f"{slug}-{len(self.state.apps)}"
        app = self._new_app(
            name=name,
            slug=slug,
            owner=self.user(owner),
            public_key_pem=public_key_pem,
            private_key_pem=private_pem,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret if webhook_secret is not None else secrets.token_hex(20),
            permissions={**(permissions or DEFAULT_PERMISSIONS), "metadata": "read"},
            events=list(events) if events is not None else list(ALL_EVENTS),
            description=description,
        )
        return self.credentials(app)

    def credentials(self, app: App) -> AppCredentials:
        return AppCredentials(
            app_id=app.id,
            slug=app.slug,
            private_key_pem=app.private_key_pem or "",
            webhook_secret=app.webhook_secret,
            client_id=app.client_id,
            client_secret=app.client_secret,
        )

    def get_app(self, app_id: int) -> App:
        app = self.state.apps.get(app_id)
        if app is None or app.internal:
            raise KeyError(f"no app {app_id}")
        return app

    async def set_webhook(self, app_id: int, url: str | None, secret: str | None = None) -> None:
        app = self.get_app(app_id)
        app.webhook_url = url
        if secret is not None:
            app.webhook_secret = secret

    async def install(
        self,
        app_id: int,
        owner: str,
        repos: list[str] | None = None,
        *,
        permissions: dict[str, str] | None = None,
        sender: str | None = None,
    ) -> int:
        """Install an App on an account: on the listed repositories, or on all of them when `repos` is None."""
        app = self.get_app(app_id)
        account = self.user(owner)
        now = self.clock()
        repo_ids: set[int] = set()
        for name in repos or []:
            repo = self.state.repo(owner, name)
            if repo is None:
                raise KeyError(f"no repository {owner}/{name}")
            repo_ids.add(repo.id)
        inst = Installation(
            id=self.state.ids.next("installation"),
            app_id=app.id,
            account=account,
            repository_selection="all" if repos is None else "selected",
            repo_ids=repo_ids,
            permissions=dict(permissions or app.permissions),
            events=list(app.events),
            created_at=now,
            updated_at=now,
        )
        self.state.installations[inst.id] = inst
        who = self.user(sender) if sender else account
        body: Json = {
            "installation": P.installation(self.urls, inst, app),
            "repositories": [
                {
                    "id": r.id,
                    "node_id": node_id("Repository", r.id),
                    "name": r.name,
                    "full_name": r.full_name,
                    "private": r.private,
                }
                for r in self.installation_repos(inst)
            ],
            "requester": None,
        }
        self._deliver(app, inst, "installation", "created", body, who, None)
        return inst.id

    def installation_repos(self, inst: Installation) -> list[Repo]:
        if inst.repository_selection == "all":
            return [r for r in self.state.repos.values() if r.owner.id == inst.account.id]
        return [r for r in self.state.repos.values() if r.id in inst.repo_ids]

    def installation_covers(self, inst: Installation, repo: Repo) -> bool:
        if inst.repository_selection == "all":
            return repo.owner.id == inst.account.id
        return repo.id in inst.repo_ids

    def issue_token(
        self,
        inst: Installation,
        *,
        repositories: list[str] | None = None,
        repository_ids: list[int] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> Token:
        by_name = {r.name.lower(): r.id for r in self.installation_repos(inst)}
        scope, granted = check_token_request(inst, by_name, repositories, repository_ids, permissions)
        token = Token(
            token=new_installation_token(),
            installation_id=inst.id,
            expires_at=self.clock() + TOKEN_LIFETIME,
            permissions=granted,
            repo_ids=scope,
        )
        self.state.tokens[token.token] = token
        return token

    async def installation_token(
        self,
        installation_id: int,
        *,
        repositories: list[str] | None = None,
        repository_ids: list[int] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> str:
        """An installation token (optionally scoped), for tests that talk to the sandbox without an App JWT."""
        inst = self.state.installations[installation_id]
        token = self.issue_token(
            inst, repositories=repositories, repository_ids=repository_ids, permissions=permissions
        )
        return token.token

    def token_json(self, token: Token) -> Json:
        inst = self.state.installations[token.installation_id]
        out: Json = {
            "token": token.token,
            "expires_at": iso(token.expires_at),
            "permissions": dict(token.permissions),
            "repository_selection": "selected" if token.repo_ids is not None else inst.repository_selection,
        }
        if token.repo_ids is not None:
            out["repositories"] = [
                P.repository(self.urls, r) for r in self.installation_repos(inst) if r.id in token.repo_ids
            ]
        elif inst.repository_selection == "selected":
            out["repositories"] = [P.repository(self.urls, r) for r in self.installation_repos(inst)]
        return out

    def token_covers(self, token: Token, inst: Installation, repo: Repo) -> bool:
        if not self.installation_covers(inst, repo):
            return False
        return token.repo_ids is None or repo.id in token.repo_ids

    # ---------------------------------------------------------------- manifests

    async def start_manifest(self, manifest: Json) -> tuple[str, str | None]:
        """What GitHub does when a user confirms a manifest: create the App, hand back a one-hour code."""
        name = str(manifest.get("name") or "Kickoff")
        hook = manifest.get("hook_attributes") or {}
        events = manifest.get("default_events")
        perms = manifest.get("default_permissions")
        creds = await self.create_app(
            name,
            webhook_url=hook.get("url") if isinstance(hook, dict) else None,
            permissions=dict(perms) if isinstance(perms, dict) else None,
            events=list(events) if isinstance(events, list) else None,
            description=manifest.get("description") if isinstance(manifest.get("description"), str) else None,
        )
        app = self.state.apps[creds.app_id]
        if isinstance(manifest.get("url"), str):
            app.external_url = manifest["url"]
        if isinstance(hook, dict) and hook.get("active") is False:
            app.webhook_active = False
        code = secrets.token_hex(16)
        self.state.manifest_codes[code] = ManifestCode(code, app.id, self.clock() + MANIFEST_CODE_LIFETIME)
        redirect = manifest.get("redirect_url")
        return code, redirect if isinstance(redirect, str) else None

    def convert_manifest(self, code: str) -> Json:
        entry = self.state.manifest_codes.get(code)
        if entry is None or entry.used or entry.expires_at <= self.clock():
            raise not_found()
        entry.used = True
        app = self.state.apps[entry.app_id]
        out = P.app(self.urls, app)
        out.update(
            {
                "pem": app.private_key_pem,
                "webhook_secret": app.webhook_secret,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            }
        )
        return out

    # ---------------------------------------------------------------- repositories

    def repo_lock(self, repo: Repo) -> asyncio.Lock:
        lock = self._repo_locks.get(repo.id)
        if lock is None:
            lock = self._repo_locks[repo.id] = asyncio.Lock()
        return lock

    def git(self, repo: Repo) -> BareRepo:
        return BareRepo(repo.path)

    def find_repo(self, owner: str, name: str) -> Repo:
        repo = self.state.repo(owner, name)
        if repo is None:
            raise not_found()
        return repo

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
        account = self.user(owner, kind=owner_type)
        now = self.clock()
        path = self.repos_root / account.login / f"{name}.git"
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
        bare = self.git(repo)
        await bare.init(default_branch)
        await bare.commit_files(
            default_branch,
            dict(files or {"README.md": f"# {name}\n"}),
            "Initial commit",
            author=_identity_of(account),
            committer=_identity_of(account),
            when=now,
        )
        self.state.repos[repo.full_name.lower()] = repo
        for label_name, color in (("bug", "d73a4a"), ("enhancement", "a2eeef"), ("documentation", "0075ca")):
            repo.labels[label_name] = Label(self.state.ids.next("label"), label_name, color, default=True)
        return repo.id

    async def set_permission(self, owner: str, repo: str, user: str, level: RoleName) -> None:
        """Make `user` a collaborator with a role (admin, maintain, write, triage, read) or remove them (none)."""
        target = self.find_repo(owner, repo)
        who = self.user(user)
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

    async def set_ci(
        self,
        owner: str,
        repo: str,
        argv: list[str] | None,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the CI command's limit, not this call's
        env: dict[str, str] | None = None,
    ) -> None:
        """Run `argv` in a fresh checkout on every push to a pull request head (None turns CI off)."""
        target = self.find_repo(owner, repo)
        target.ci = CiConfig(list(argv), timeout, dict(env or {})) if argv else None

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
        target = self.find_repo(owner, repo)
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
        target = self.find_repo(owner, repo)
        who = self.user(author) if author else target.owner
        bare = self.git(target)
        async with self.repo_lock(target):
            old = await bare.ref_sha(f"refs/heads/{branch}")
            parent = old
            if parent is None:
                parent = await bare.resolve(base or target.default_branch)
                if parent is None:
                    raise KeyError(f"no base {base!r} in {target.full_name}")
            ident = _identity_of(who)
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
        bare = self.git(repo)
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
                    await self._close_issue(repo, iss, pusher)
                    continue
                await self._emit_pull(repo, iss, "synchronize", pusher, extra={"before": upd.old, "after": upd.new})
                self.start_ci(repo, upd.new, branch)

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
        ident = _identity_of(pusher)
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
        self.emit("push", None, repo, body, pusher, keep_repository=True)

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
        logins = {_identity_of(u).email.lower(): u.login for u in self.state.users.values()}
        return P.push_commit(self.urls, repo, info, added, removed, modified, logins)

    # ---------------------------------------------------------------- webhooks

    def emit(
        self,
        event: str,
        action: str | None,
        repo: Repo | None,
        body: Json,
        sender: User,
        *,
        only_app: int | None = None,
        keep_repository: bool = False,
    ) -> None:
        """Announce a change to every App installed on the repository that subscribes to the event."""
        if repo is None:
            return
        for inst in list(self.state.installations.values()):
            if not self.installation_covers(inst, repo):
                continue
            app = self.state.apps[inst.app_id]
            if only_app is not None and app.id != only_app:
                continue
            if event not in inst.events and event not in app.events:
                continue
            needed = EVENT_PERMISSION.get(event, ())
            if needed and not any(inst.permissions.get(p) in ("read", "write", "admin") for p in needed):
                continue
            self._deliver(app, inst, event, action, body, sender, repo, keep_repository=keep_repository)

    def _deliver(
        self,
        app: App,
        inst: Installation,
        event: str,
        action: str | None,
        body: Json,
        sender: User,
        repo: Repo | None,
        *,
        keep_repository: bool = False,
    ) -> None:
        if not app.webhook_url or not app.webhook_active or app.internal:
            return
        payload: Json = {"action": action} if action is not None else {}
        payload.update(body)
        if repo is not None:
            if not keep_repository or "repository" not in payload:
                payload["repository"] = P.repository(self.urls, repo)
            if repo.owner.type == "Organization":
                payload["organization"] = self._organization(repo.owner)
        payload["sender"] = P.user(self.urls, sender)
        if event != "installation":
            payload["installation"] = {"id": inst.id, "node_id": node_id("Installation", inst.id)}
        if self.webhook_validator is not None:
            problems = self.webhook_validator(event, action, payload)
            if problems:
                self.violations.append(Violation(f"webhook {event}.{action or 'none'}", problems))
        delivery = build_delivery(
            delivery_id=self.state.ids.next("delivery"),
            app=app,
            event=event,
            action=action,
            payload=payload,
            installation_id=inst.id,
            repository_id=repo.id if repo else None,
            now=self.clock(),
        )
        self.state.deliveries[delivery.id] = delivery
        self.outbox.enqueue(delivery)

    def _organization(self, org: User) -> Json:
        base = f"{self.urls.api}/orgs/{org.login}"
        return {
            "login": org.login,
            "id": org.id,
            "node_id": node_id("Organization", org.id),
            "url": base,
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events",
            "hooks_url": f"{base}/hooks",
            "issues_url": f"{base}/issues",
            "members_url": f"{base}/members{{/member}}",
            "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"{self.urls.web}/avatars/u/{org.id}?v=4",
            "description": None,
        }

    def redeliver(self, app: App, delivery_id: int) -> Delivery:
        """POST /app/hook/deliveries/{id}/attempts: the same payload and GUID, as a new delivery."""
        original = self.state.deliveries.get(delivery_id)
        if original is None or original.app_id != app.id:
            raise not_found()
        again = build_delivery(
            delivery_id=self.state.ids.next("delivery"),
            app=app,
            event=original.event,
            action=original.action,
            payload={},
            body=original.body,
            installation_id=original.installation_id,
            repository_id=original.repository_id,
            now=self.clock(),
            guid=original.guid,
            redelivery=True,
        )
        self.state.deliveries[again.id] = again
        self.outbox.enqueue(again)
        return again

    def deliveries(self, app_id: int | None = None) -> list[Delivery]:
        return [d for d in self.state.deliveries.values() if app_id is None or d.app_id == app_id]

    # ---------------------------------------------------------------- issues

    def find_issue(self, repo: Repo, number: int) -> Issue:
        iss = repo.issues.get(number)
        if iss is None:
            raise not_found()
        return iss

    def issue_json(self, repo: Repo, iss: Issue) -> Json:
        return P.issue(self.urls, repo, iss, association=self.association(repo, iss.user))

    def comment_json(self, repo: Repo, c: Comment) -> Json:
        via: Json | None = None
        if c.user.type == "Bot":
            for app in self.state.apps.values():
                if app.bot.id == c.user.id:
                    via = P.app(self.urls, app)
        return P.comment(self.urls, repo, c, association=self.association(repo, c.user), via_app=via)

    def ensure_label(self, repo: Repo, name: str, color: str = "ededed", description: str | None = None) -> Label:
        lab = repo.labels.get(name.lower())
        if lab is None:
            lab = Label(self.state.ids.next("label"), name, color, description)
            repo.labels[name.lower()] = lab
        return lab

    async def open_issue(
        self,
        owner: str,
        repo: str,
        title: str,
        body: str | None = None,
        *,
        sender: str | None = None,
        labels: list[str] | None = None,
    ) -> int:
        """Open an issue as `sender` (default: the owner); emits `issues.opened` (labels come with it)."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        iss = self.create_issue(target, who, title, body, labels or [])
        return iss.number

    def _next_number(self, repo: Repo) -> int:
        number = repo.next_number
        repo.next_number += 1
        return number

    def _new_issue(self, repo: Repo, who: User, title: str, body: str | None) -> Issue:
        """An issue or a pull request's issue: they share one numbering per repository, as on GitHub."""
        now = self.clock()
        return Issue(
            id=self.state.ids.next("issue"),
            repo_id=repo.id,
            number=self._next_number(repo),
            title=title,
            body=body,
            user=who,
            created_at=now,
            updated_at=now,
        )

    def create_issue(self, repo: Repo, who: User, title: str, body: str | None, labels: list[str]) -> Issue:
        iss = self._new_issue(repo, who, title, body)
        for name in labels:
            iss.labels.append(self.ensure_label(repo, name).name)
        repo.issues[iss.number] = iss
        self.emit("issues", "opened", repo, {"issue": self.issue_json(repo, iss)}, who)
        for name in iss.labels:  # GitHub follows `opened` with one `labeled` per label given at creation
            lab = P.label(self.urls, repo, repo.labels[name.lower()])
            self.emit("issues", "labeled", repo, {"issue": self.issue_json(repo, iss), "label": lab}, who)
        return iss

    async def add_label(self, owner: str, repo: str, number: int, label: str, *, sender: str | None = None) -> None:
        """Label an issue or pull request as `sender`; emits `issues.labeled` / `pull_request.labeled`."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        await self.add_labels(target, self.find_issue(target, number), [label], who)

    async def remove_label(self, owner: str, repo: str, number: int, label: str, *, sender: str | None = None) -> None:
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        await self.remove_issue_label(target, self.find_issue(target, number), label, who)

    async def add_labels(self, repo: Repo, iss: Issue, names: list[str], who: User) -> None:
        for name in names:
            lab = self.ensure_label(repo, name)
            if any(existing.lower() == lab.name.lower() for existing in iss.labels):
                continue
            iss.labels.append(lab.name)
            iss.updated_at = self.clock()
            await self._emit_issue_or_pull(repo, iss, "labeled", who, {"label": P.label(self.urls, repo, lab)})

    async def remove_issue_label(self, repo: Repo, iss: Issue, name: str, who: User) -> None:
        for existing in list(iss.labels):
            if existing.lower() == name.lower():
                iss.labels.remove(existing)
                iss.updated_at = self.clock()
                lab = repo.labels[existing.lower()]
                await self._emit_issue_or_pull(repo, iss, "unlabeled", who, {"label": P.label(self.urls, repo, lab)})
                return
        raise ApiError(404, "Label does not exist")

    async def _emit_issue_or_pull(self, repo: Repo, iss: Issue, action: str, who: User, extra: Json) -> None:
        if iss.pull is not None:
            await self._emit_pull(repo, iss, action, who, extra=extra)
        else:
            self.emit("issues", action, repo, {"issue": self.issue_json(repo, iss), **extra}, who)

    async def edit_issue(
        self,
        repo: Repo,
        iss: Issue,
        who: User,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
        state_reason: str | None = None,
        labels: list[str] | None = None,
        assignees: list[str] | None = None,
        body_set: bool = False,
    ) -> None:
        changes: Json = {}
        if title is not None and title != iss.title:
            changes["title"] = {"from": iss.title}
            iss.title = title
        if body_set and body != iss.body:
            changes["body"] = {"from": iss.body or ""}
            iss.body = body
        if assignees is not None:
            iss.assignees = [self.user(a) for a in assignees]
        if changes:
            iss.updated_at = self.clock()
            await self._emit_issue_or_pull(repo, iss, "edited", who, {"changes": changes})
        if labels is not None:
            for existing in list(iss.labels):
                if existing.lower() not in {n.lower() for n in labels}:
                    await self.remove_issue_label(repo, iss, existing, who)
            await self.add_labels(repo, iss, labels, who)
        if state == "closed" and iss.state == "open":
            await self._close_issue(repo, iss, who, reason=state_reason or "completed")
        elif state == "open" and iss.state == "closed":
            await self._reopen_issue(repo, iss, who)

    async def _close_issue(self, repo: Repo, iss: Issue, who: User, reason: str = "completed") -> None:
        now = self.clock()
        iss.state = "closed"
        iss.closed_at = now
        iss.closed_by = who
        iss.updated_at = now
        if iss.pull is not None:
            iss.pull.frozen_head_sha = await self._head_sha(repo, iss.pull)
            iss.pull.frozen_base_sha = await self._base_sha(repo, iss.pull)
            await self._emit_pull(repo, iss, "closed", who)
        else:
            iss.state_reason = reason
            self.emit("issues", "closed", repo, {"issue": self.issue_json(repo, iss)}, who)

    async def _reopen_issue(self, repo: Repo, iss: Issue, who: User) -> None:
        if iss.pull is not None:
            if iss.pull.merged:
                raise validation_failed(message="Cannot reopen a merged pull request")
            if await self.git(repo).ref_sha(f"refs/heads/{iss.pull.head_ref}") is None:
                raise validation_failed(message="Cannot reopen this pull request: the head branch is gone")
        iss.state = "open"
        iss.closed_at = None
        iss.closed_by = None
        iss.state_reason = "reopened"
        iss.updated_at = self.clock()
        if iss.pull is not None:
            iss.pull.frozen_head_sha = None
            iss.pull.frozen_base_sha = None
        await self._emit_issue_or_pull(repo, iss, "reopened", who, {})

    async def close_issue(self, owner: str, repo: str, number: int, *, sender: str | None = None) -> None:
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        await self.edit_issue(target, self.find_issue(target, number), who, state="closed")

    async def comment(self, owner: str, repo: str, number: int, body: str, *, sender: str | None = None) -> int:
        """Comment on an issue or pull request as `sender`; emits `issue_comment.created`. Returns the comment id."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        return self.create_comment(target, self.find_issue(target, number), who, body).id

    def create_comment(self, repo: Repo, iss: Issue, who: User, body: str) -> Comment:
        now = self.clock()
        c = Comment(self.state.ids.next("comment"), repo.id, iss.number, who, body, now, now)
        self.state.comments[c.id] = c
        iss.comment_ids.append(c.id)
        iss.updated_at = now
        self._emit_comment(repo, iss, c, "created", who)
        return c

    def _emit_comment(
        self, repo: Repo, iss: Issue, c: Comment, action: str, who: User, extra: Json | None = None
    ) -> None:
        body: Json = {"issue": self.issue_json(repo, iss), "comment": self.comment_json(repo, c)}
        body.update(extra or {})
        self.emit("issue_comment", action, repo, body, who)

    def find_comment(self, repo: Repo, comment_id: int) -> Comment:
        c = self.state.comments.get(comment_id)
        if c is None or c.repo_id != repo.id:
            raise not_found()
        return c

    def edit_comment(self, repo: Repo, c: Comment, who: User, body: str) -> None:
        old = c.body
        c.body = body
        c.updated_at = self.clock()
        if old != body:
            self._emit_comment(
                repo, repo.issues[c.issue_number], c, "edited", who, {"changes": {"body": {"from": old}}}
            )

    def delete_comment(self, repo: Repo, c: Comment, who: User) -> None:
        iss = repo.issues[c.issue_number]
        del self.state.comments[c.id]
        iss.comment_ids.remove(c.id)
        self._emit_comment(repo, iss, c, "deleted", who)

    async def edit_comment_as(
        self, owner: str, repo: str, comment_id: int, body: str, *, sender: str | None = None
    ) -> None:
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        self.edit_comment(target, self.find_comment(target, comment_id), who, body)

    def add_reaction(self, reactions: list[Reaction], who: User, content: str) -> tuple[Reaction, bool]:
        if content not in P.REACTION_CONTENTS:
            raise validation_failed(
                {"resource": "Reaction", "code": "invalid", "field": "content"},
            )
        for r in reactions:
            if r.user.id == who.id and r.content == content:
                return r, False
        r = Reaction(self.state.ids.next("reaction"), who, content, self.clock())
        reactions.append(r)
        return r, True

    async def react(
        self,
        owner: str,
        repo: str,
        *,
        content: str,
        sender: str,
        number: int | None = None,
        comment_id: int | None = None,
    ) -> int:
        """React to an issue (`number`) or an issue comment (`comment_id`) as `sender`."""
        target = self.find_repo(owner, repo)
        who = self.user(sender)
        if comment_id is not None:
            reactions = self.find_comment(target, comment_id).reactions
        elif number is not None:
            reactions = self.find_issue(target, number).reactions
        else:
            raise ValueError("react needs number or comment_id")
        return self.add_reaction(reactions, who, content)[0].id

    # ---------------------------------------------------------------- pull requests

    async def _head_sha(self, repo: Repo, pr: PullRequest) -> str:
        sha = await self.git(repo).ref_sha(f"refs/heads/{pr.head_ref}")
        return sha or pr.frozen_head_sha or ZERO_SHA

    async def _base_sha(self, repo: Repo, pr: PullRequest) -> str:
        sha = await self.git(repo).ref_sha(f"refs/heads/{pr.base_ref}")
        return sha or pr.frozen_base_sha or ZERO_SHA

    async def pull_facts(self, repo: Repo, iss: Issue) -> P.PullFacts:
        pr = iss.pull
        assert pr is not None
        bare = self.git(repo)
        if iss.state == "closed" and pr.frozen_head_sha:
            head, base = pr.frozen_head_sha, pr.frozen_base_sha or await self._base_sha(repo, pr)
        else:
            head, base = await self._head_sha(repo, pr), await self._base_sha(repo, pr)
        mergeable: bool | None = None
        state = "unknown"
        merge_base = await bare.merge_base(base, head) if head != ZERO_SHA and base != ZERO_SHA else None
        if iss.state == "open" and merge_base is not None:
            tree, _conflicts = await bare.merge_tree(base, head)
            mergeable = tree is not None
            state = await self._mergeable_state(repo, iss, pr, head, base, mergeable)
        commits = len(await bare.rev_list(merge_base, head)) if merge_base else 0
        changes = await bare.changed_files(merge_base, head) if merge_base else []
        return P.PullFacts(
            head_sha=head,
            base_sha=base,
            mergeable=mergeable,
            mergeable_state=state,
            rebaseable=mergeable,
            commits=commits,
            additions=sum(c.additions for c in changes),
            deletions=sum(c.deletions for c in changes),
            changed_files=len(changes),
        )

    async def _mergeable_state(
        self, repo: Repo, iss: Issue, pr: PullRequest, head: str, base: str, mergeable: bool
    ) -> str:
        if not mergeable:
            return "dirty"
        if pr.draft:
            return "draft"
        reasons, behind = await self.merge_blockers(repo, pr, head, base)
        if reasons:
            return "blocked"
        if behind:
            return "behind"
        checks = self.check_states(repo, head)
        if any(c in FAILING or c == "pending" for c in checks.values()):
            return "unstable"
        return "clean"

    async def merge_blockers(self, repo: Repo, pr: PullRequest, head: str, base: str) -> tuple[list[str], bool]:
        """What branch protection holds the merge button for, in GitHub's words, and whether head is behind."""
        rule = repo.protection.get(pr.base_ref)
        if rule is None:
            return [], False
        reasons: list[str] = []
        checks = self.check_states(repo, head)
        for name in rule.required_checks:
            if checks.get(name) not in PASSING:
                reasons.append(f'Required status check "{name}" is expected.')
        approvals, change_requests = self.review_decision_counts(repo, pr)
        if change_requests:
            reasons.append("Changes have been requested.")
        elif approvals < rule.required_approvals:
            reasons.append(
                f"At least {rule.required_approvals} approving review is required by reviewers with write access."
            )
        behind = rule.strict and not await self.git(repo).is_ancestor(base, head)
        return reasons, behind

    def review_decision_counts(self, repo: Repo, pr: PullRequest) -> tuple[int, int]:
        """(approvals, change requests) counting each reviewer's latest decisive review, from reviewers who hold
        write access now (GitHub shows the others' approvals grey and ignores them)."""
        latest: dict[int, str] = {}
        for r in pr.reviews:
            if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[r.user.id] = r.state
        writers = {r.user.id for r in pr.reviews if ROLE_RANK[self.role_of(repo, r.user)] >= ROLE_RANK["write"]}
        latest = {user: state for user, state in latest.items() if user in writers}
        return (
            sum(1 for s in latest.values() if s == "APPROVED"),
            sum(1 for s in latest.values() if s == "CHANGES_REQUESTED"),
        )

    async def review_decision(self, owner: str, repo: str, number: int) -> str | None:
        """GraphQL's `reviewDecision`: APPROVED, CHANGES_REQUESTED, REVIEW_REQUIRED or None."""
        target = self.find_repo(owner, repo)
        pr = self.find_issue(target, number).pull
        if pr is None:
            raise not_found()
        approvals, changes = self.review_decision_counts(target, pr)
        if changes:
            return "CHANGES_REQUESTED"
        rule = target.protection.get(pr.base_ref)
        needed = rule.required_approvals if rule else 0
        if approvals and approvals >= needed:
            return "APPROVED"
        return "REVIEW_REQUIRED" if needed else None

    def check_states(self, repo: Repo, sha: str) -> dict[str, str]:
        """Latest check run per name and latest status per context: conclusion, or `pending`."""
        out: dict[str, str] = {}
        runs = sorted(
            (r for r in self.state.check_runs.values() if r.repo_id == repo.id and r.head_sha == sha),
            key=lambda r: r.id,
        )
        for run in runs:
            out[run.name] = run.conclusion if run.status == "completed" and run.conclusion else "pending"
        for st in sorted((s for s in self.state.statuses if s.repo_id == repo.id and s.sha == sha), key=lambda s: s.id):
            out[st.context] = {"error": "failure"}.get(st.state, st.state)
        return out

    async def pull_json(self, repo: Repo, iss: Issue, *, simple: bool = False) -> Json:
        facts = await self.pull_facts(repo, iss)
        assoc = self.association(repo, iss.user)
        if simple:
            return P.pull_request_simple(self.urls, repo, iss, facts, association=assoc)
        return P.pull_request(self.urls, repo, iss, facts, association=assoc)

    async def _emit_pull(self, repo: Repo, iss: Issue, action: str, who: User, *, extra: Json | None = None) -> None:
        body: Json = {"number": iss.number, "pull_request": await self.pull_json(repo, iss)}
        body.update(extra or {})
        self.emit("pull_request", action, repo, body, who)

    def find_pull(self, repo: Repo, number: int) -> Issue:
        iss = repo.issues.get(number)
        if iss is None or iss.pull is None:
            raise not_found()
        return iss

    async def create_pull(
        self,
        repo: Repo,
        who: User,
        *,
        head: str,
        base: str,
        title: str | None,
        body: str | None,
        draft: bool = False,
        maintainer_can_modify: bool = True,
        issue_number: int | None = None,
    ) -> Issue:
        head_owner, sep, head_branch = head.rpartition(":")
        if not sep:
            head_branch = head
        elif head_owner.lower() != repo.owner.login.lower():
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        bare = self.git(repo)
        head_sha = await bare.ref_sha(f"refs/heads/{head_branch}")
        base_sha = await bare.ref_sha(f"refs/heads/{base}")
        errors: list[Json] = []
        if base_sha is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if head_sha is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if errors:
            raise validation_failed(*errors)
        assert head_sha is not None
        assert base_sha is not None
        if await bare.is_ancestor(head_sha, base_sha):
            raise validation_failed(
                {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head_branch}"}
            )
        for other in list(repo.issues.values()):
            if (
                other.pull
                and other.state == "open"
                and other.pull.head_ref == head_branch
                and other.pull.base_ref == base
            ):
                raise validation_failed(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner.login}:{head_branch}.",
                    }
                )
        if issue_number is not None:
            iss = self.find_issue(repo, issue_number)
            if iss.pull is not None:
                raise validation_failed(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "field": "issue",
                        "message": "Issue is already a pull request",
                    }
                )
        else:
            if not title:
                raise validation_failed({"resource": "PullRequest", "code": "missing_field", "field": "title"})
            iss = self._new_issue(repo, who, title, body)
            repo.issues[iss.number] = iss
        iss.pull = PullRequest(
            id=self.state.ids.next("pull"),
            head_ref=head_branch,
            base_ref=base,
            draft=draft,
            maintainer_can_modify=maintainer_can_modify,
        )
        await self._emit_pull(repo, iss, "opened", who)
        self.start_ci(repo, head_sha, head_branch)
        return iss

    async def open_pull(
        self,
        owner: str,
        repo: str,
        head: str,
        base: str | None = None,
        title: str = "",
        body: str | None = None,
        *,
        sender: str | None = None,
        draft: bool = False,
    ) -> int:
        """Open a pull request as `sender`; emits `pull_request.opened` and starts CI. Returns its number."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        iss = await self.create_pull(
            target, who, head=head, base=base or target.default_branch, title=title or head, body=body, draft=draft
        )
        return iss.number

    async def update_pull(
        self,
        repo: Repo,
        iss: Issue,
        who: User,
        *,
        title: str | None = None,
        body: str | None = None,
        body_set: bool = False,
        state: str | None = None,
        base: str | None = None,
        maintainer_can_modify: bool | None = None,
    ) -> None:
        pr = iss.pull
        assert pr is not None
        changes: Json = {}
        if title is not None and title != iss.title:
            changes["title"] = {"from": iss.title}
            iss.title = title
        if body_set and body != iss.body:
            changes["body"] = {"from": iss.body or ""}
            iss.body = body
        if base is not None and base != pr.base_ref:
            if await self.git(repo).ref_sha(f"refs/heads/{base}") is None:
                raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
            changes["base"] = {"ref": {"from": pr.base_ref}, "sha": {"from": await self._base_sha(repo, pr)}}
            pr.base_ref = base
        if maintainer_can_modify is not None:
            pr.maintainer_can_modify = maintainer_can_modify
        if changes:
            iss.updated_at = self.clock()
            await self._emit_pull(repo, iss, "edited", who, extra={"changes": changes})
        if state == "closed" and iss.state == "open":
            await self._close_issue(repo, iss, who)
        elif state == "open" and iss.state == "closed":
            await self._reopen_issue(repo, iss, who)

    async def set_draft(self, owner: str, repo: str, number: int, draft: bool, *, sender: str | None = None) -> None:
        """Convert to draft / mark ready for review (GraphQL-only on GitHub); emits the matching webhook."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        iss = self.find_pull(target, number)
        assert iss.pull is not None
        if iss.pull.draft == draft:
            return
        iss.pull.draft = draft
        iss.updated_at = self.clock()
        await self._emit_pull(target, iss, "converted_to_draft" if draft else "ready_for_review", who)

    async def request_reviewers(self, repo: Repo, iss: Issue, who: User, logins: list[str]) -> None:
        pr = iss.pull
        assert pr is not None
        for login in logins:
            reviewer = self.user(login)
            if reviewer.id == iss.user.id:
                raise validation_failed(message="Review cannot be requested from pull request author.")
            if any(r.id == reviewer.id for r in pr.requested_reviewers):
                continue
            pr.requested_reviewers.append(reviewer)
            await self._emit_pull(
                repo, iss, "review_requested", who, extra={"requested_reviewer": P.user(self.urls, reviewer)}
            )

    async def submit_review(
        self,
        repo: Repo,
        iss: Issue,
        who: User,
        *,
        event: str | None,
        body: str | None,
        commit_id: str | None = None,
        comments: list[Json] | None = None,
    ) -> Review:
        pr = iss.pull
        assert pr is not None
        if iss.state != "open" and event:
            raise validation_failed("Pull request is closed", message="Unprocessable Entity")
        states: dict[str, ReviewState] = {
            "APPROVE": "APPROVED",
            "REQUEST_CHANGES": "CHANGES_REQUESTED",
            "COMMENT": "COMMENTED",
        }
        if event is not None and event not in states:
            raise validation_failed({"resource": "PullRequestReview", "code": "invalid", "field": "event"})
        if event in ("REQUEST_CHANGES", "COMMENT") and not body and not comments:
            raise validation_failed(f"Review body is required when event is {event}", message="Unprocessable Entity")
        if event in ("APPROVE", "REQUEST_CHANGES") and who.id == iss.user.id:
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise validation_failed(f"Can not {verb} your own pull request", message="Unprocessable Entity")
        head = await self._head_sha(repo, pr)
        now = self.clock()
        review = Review(
            id=self.state.ids.next("review"),
            user=who,
            body=body or "",
            state=states[event] if event else "PENDING",
            commit_id=commit_id or head,
            submitted_at=now if event else None,
        )
        pr.reviews.append(review)
        for spec in comments or []:
            rc = ReviewComment(
                id=self.state.ids.next("review_comment"),
                review_id=review.id,
                user=who,
                body=str(spec.get("body", "")),
                path=str(spec.get("path", "")),
                line=spec.get("line") if isinstance(spec.get("line"), int) else spec.get("position"),
                side=str(spec.get("side", "RIGHT")),
                commit_id=review.commit_id,
                original_commit_id=review.commit_id,
                created_at=now,
                updated_at=now,
            )
            pr.review_comments.append(rc)
        pr.requested_reviewers = [r for r in pr.requested_reviewers if r.id != who.id]
        if event:
            body_json: Json = {
                "review": P.review(self.urls, repo, iss.number, review, association=self.association(repo, who)),
                "pull_request": await self.pull_json(repo, iss, simple=True),
            }
            body_json["review"]["state"] = review.state.lower()  # webhooks spell review states in lower case
            self.emit("pull_request_review", "submitted", repo, body_json, who)
        return review

    async def approve(self, owner: str, repo: str, number: int, reviewer: str, body: str = "") -> int:
        """Approve a pull request as `reviewer`; emits `pull_request_review.submitted`. Returns the review id."""
        target = self.find_repo(owner, repo)
        iss = self.find_pull(target, number)
        return (await self.submit_review(target, iss, self.user(reviewer), event="APPROVE", body=body)).id

    async def review(self, owner: str, repo: str, number: int, reviewer: str, event: str, body: str = "") -> int:
        """Submit a review (APPROVE, REQUEST_CHANGES, COMMENT) as `reviewer`."""
        target = self.find_repo(owner, repo)
        iss = self.find_pull(target, number)
        return (await self.submit_review(target, iss, self.user(reviewer), event=event, body=body)).id

    async def merge(
        self,
        repo: Repo,
        iss: Issue,
        who: User,
        *,
        method: str = "merge",
        sha: str | None = None,
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        """Merge for real in the bare repository; GitHub's 405/409 when it cannot."""
        pr = iss.pull
        assert pr is not None
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed({"resource": "PullRequest", "code": "invalid", "field": "merge_method"})
        bare = self.git(repo)
        async with self.repo_lock(repo):
            if iss.state != "open" or pr.merged:
                raise ApiError(405, "Pull Request is not mergeable")
            if pr.draft:
                raise ApiError(405, "Pull Request is still a draft")
            head = await self._head_sha(repo, pr)
            base = await self._base_sha(repo, pr)
            if sha is not None and sha != head:
                raise ApiError(409, "Head branch was modified. Review and try the merge again.")
            reasons, behind = await self.merge_blockers(repo, pr, head, base)
            if behind:
                reasons.append("Head branch is out of date. Review and try the merge again.")
            if reasons:
                raise ApiError(405, "Repository rule violations found\n\n" + "\n".join(reasons))
            author = _identity_of(who)
            now = self.clock()
            if method == "rebase":
                commits = await bare.rev_list(base, head, no_merges=True)  # as `git rebase` does
                new = await bare.rebase(base, commits, GITHUB_IDENTITY, now)
                if new is None:
                    raise ApiError(405, "Pull Request is not mergeable")
            else:
                tree, _ = await bare.merge_tree(base, head)
                if tree is None:
                    raise ApiError(405, "Pull Request is not mergeable")
                if method == "merge":
                    msg = title or f"Merge pull request #{iss.number} from {repo.owner.login}/{pr.head_ref}"
                    msg += "\n\n" + (message if message is not None else iss.title)
                    new = await bare.commit_tree(tree, [base, head], msg, author, GITHUB_IDENTITY, now)
                else:
                    if message is None:
                        subjects = []
                        for c in await bare.rev_list(base, head):
                            subjects.append("* " + (await bare.commit_info(c)).message.splitlines()[0])
                        message = "\n".join(subjects)
                    msg = (title or f"{iss.title} (#{iss.number})") + ("\n\n" + message if message else "")
                    new = await bare.commit_tree(tree, [base], msg, _identity_of(iss.user), GITHUB_IDENTITY, now)
            if not await bare.update_ref(f"refs/heads/{pr.base_ref}", new, base):
                raise ApiError(409, "Base branch was modified. Review and try the merge again.")
            pr.merged = True
            pr.merged_at = now
            pr.merged_by = who
            pr.merge_commit_sha = new
            pr.frozen_head_sha = head
            pr.frozen_base_sha = base
            iss.state = "closed"
            iss.closed_at = now
            iss.closed_by = who
            iss.updated_at = now
        await self.after_push(repo, [RefUpdate(f"refs/heads/{pr.base_ref}", base, new)], who)
        await self._emit_pull(repo, iss, "closed", who)
        return new

    async def merge_pull(
        self, owner: str, repo: str, number: int, *, sender: str | None = None, method: str = "merge"
    ) -> str:
        """Press the merge button as `sender`. Returns the merge commit sha."""
        target = self.find_repo(owner, repo)
        who = self.user(sender) if sender else target.owner
        return await self.merge(target, self.find_pull(target, number), who, method=method)

    async def update_branch(self, repo: Repo, iss: Issue, who: User, expected_head_sha: str | None = None) -> str:
        """Merge the base branch into the head branch for real; 422 on conflict."""
        pr = iss.pull
        assert pr is not None
        bare = self.git(repo)
        async with self.repo_lock(repo):
            if iss.state != "open":
                raise validation_failed(message="Pull request is closed")
            head = await self._head_sha(repo, pr)
            base = await self._base_sha(repo, pr)
            if expected_head_sha is not None and expected_head_sha != head:
                raise validation_failed(message="expected_head_sha does not match the pull request's head sha")
            if await bare.is_ancestor(base, head):
                raise validation_failed(message="There are no new commits on the base branch.")
            tree, _conflicts = await bare.merge_tree(head, base)
            if tree is None:
                raise validation_failed(message="merge conflict between base and head")
            ident = _identity_of(who)
            msg = f"Merge branch '{pr.base_ref}' into {pr.head_ref}"
            new = await bare.commit_tree(tree, [head, base], msg, ident, GITHUB_IDENTITY, self.clock())
            if not await bare.update_ref(f"refs/heads/{pr.head_ref}", new, head):
                raise validation_failed(message="expected_head_sha does not match the pull request's head sha")
        await self.after_push(repo, [RefUpdate(f"refs/heads/{pr.head_ref}", head, new)], who)
        return new

    # ---------------------------------------------------------------- checks and statuses

    def suite_for(self, repo: Repo, app: App, sha: str, branch: str | None) -> CheckSuite:
        for suite in self.state.check_suites.values():
            if suite.repo_id == repo.id and suite.app_id == app.id and suite.head_sha == sha:
                return suite
        now = self.clock()
        suite = CheckSuite(self.state.ids.next("check_suite"), repo.id, app.id, sha, branch, now, now)
        self.state.check_suites[suite.id] = suite
        return suite

    async def branches_at(self, repo: Repo, sha: str) -> list[str]:
        return [name for name, head in (await self.git(repo).branches()).items() if head == sha]

    async def pulls_for_sha(self, repo: Repo, sha: str) -> list[Json]:
        out = []
        for iss in list(repo.issues.values()):  # awaits inside: PRs may open meanwhile
            pr = iss.pull
            if pr is None or iss.state != "open":
                continue
            head = await self._head_sha(repo, pr)
            if head == sha:
                out.append(
                    P.pull_ref(
                        self.urls,
                        repo,
                        iss.number,
                        pr.id,
                        pr.head_ref,
                        head,
                        pr.base_ref,
                        await self._base_sha(repo, pr),
                    )
                )
        return out

    async def check_run_json(self, repo: Repo, run: CheckRun) -> Json:
        suite = self.state.check_suites[run.suite_id]
        return P.check_run(
            self.urls, repo, run, suite, self.state.apps[run.app_id], await self.pulls_for_sha(repo, run.head_sha)
        )

    async def check_suite_json(self, repo: Repo, suite: CheckSuite, *, with_repository: bool = True) -> Json:
        runs = [r for r in self.state.check_runs.values() if r.suite_id == suite.id]
        info: CommitInfo | None = None
        try:
            info = await self.git(repo).commit_info(suite.head_sha)
        except GitError:
            info = None
        return P.check_suite(
            self.urls,
            repo,
            suite,
            self.state.apps[suite.app_id],
            runs,
            info,
            await self.pulls_for_sha(repo, suite.head_sha),
            with_repository=with_repository,
        )

    @staticmethod
    def validate_check_fields(body: Json) -> None:
        """GitHub's limits on check runs: ≤3 actions (label ≤20, description ≤40, identifier ≤20), text ≤65535."""
        errors: list[Json] = []
        actions = body.get("actions")
        if actions is not None:
            if not isinstance(actions, list):
                errors.append({"resource": "CheckRun", "code": "invalid", "field": "actions"})
            else:
                if len(actions) > 3:
                    errors.append(
                        {
                            "resource": "CheckRun",
                            "code": "custom",
                            "field": "actions",
                            "message": "Only 3 actions are allowed per check run",
                        }
                    )
                limits = {"label": 20, "description": 40, "identifier": 20}
                for idx, action in enumerate(actions):
                    if not isinstance(action, dict):
                        errors.append({"resource": "CheckRun", "code": "invalid", "field": f"actions[{idx}]"})
                        continue
                    for key, limit in limits.items():
                        value = action.get(key)
                        if not isinstance(value, str) or not value:
                            errors.append(
                                {"resource": "CheckRun", "code": "missing_field", "field": f"actions[{idx}].{key}"}
                            )
                        elif len(value) > limit:
                            errors.append(
                                {
                                    "resource": "CheckRun",
                                    "code": "custom",
                                    "field": f"actions[{idx}].{key}",
                                    "message": f"{key} is too long (maximum is {limit} characters)",
                                }
                            )
        output = body.get("output")
        if isinstance(output, dict):
            for key in ("summary", "text"):
                value = output.get(key)
                if isinstance(value, str) and len(value) > 65535:
                    errors.append(
                        {
                            "resource": "CheckRun",
                            "code": "custom",
                            "field": f"output.{key}",
                            "message": f"{key} is too long (maximum is 65535 characters)",
                        }
                    )
            annotations = output.get("annotations")
            if isinstance(annotations, list) and len(annotations) > 50:
                errors.append(
                    {
                        "resource": "CheckRun",
                        "code": "custom",
                        "field": "output.annotations",
                        "message": "Only 50 annotations are allowed per request",
                    }
                )
        status, conclusion = body.get("status"), body.get("conclusion")
        if status == "completed" and not conclusion:
            errors.append({"resource": "CheckRun", "code": "missing_field", "field": "conclusion"})
        if errors:
            raise validation_failed(*errors)

    async def create_check_run(self, repo: Repo, app: App, body: Json) -> CheckRun:
        self.validate_check_fields(body)
        name, head_sha = body.get("name"), body.get("head_sha")
        if not isinstance(name, str) or not name:
            raise validation_failed({"resource": "CheckRun", "code": "missing_field", "field": "name"})
        if not isinstance(head_sha, str) or await self.git(repo).resolve(head_sha) != head_sha:
            raise validation_failed(message=f"No commit found for SHA: {head_sha}")
        branches = await self.branches_at(repo, head_sha)
        suite = self.suite_for(repo, app, head_sha, branches[0] if branches else None)
        now = self.clock()
        conclusion = body.get("conclusion")
        status = "completed" if conclusion else str(body.get("status") or "queued")
        run = CheckRun(
            id=self.state.ids.next("check_run"),
            suite_id=suite.id,
            repo_id=repo.id,
            app_id=app.id,
            name=name,
            head_sha=head_sha,
            status=status,
            conclusion=conclusion if status == "completed" else None,
            started_at=now,  # GitHub stamps it at creation, even for a queued run
            completed_at=now if status == "completed" else None,
            external_id=str(body.get("external_id") or ""),
            details_url=body.get("details_url") or f"{self.urls.web}/apps/{app.slug}",
            output=dict(body.get("output") or {}),
            actions=list(body.get("actions") or []),
        )
        if run.started_at is None and status != "queued":
            run.started_at = now
        self.state.check_runs[run.id] = run
        suite.updated_at = now
        suite.completed_announced = False
        await self._emit_check_run(repo, run, "created", app.bot)
        if run.status == "completed":
            await self._check_completed(repo, run, app.bot)
        return run

    async def update_check_run(self, repo: Repo, run: CheckRun, body: Json) -> None:
        self.validate_check_fields(body)
        was_completed = run.status == "completed"
        now = self.clock()
        if isinstance(body.get("name"), str):
            run.name = body["name"]
        for key in ("details_url", "external_id"):
            if key in body:
                setattr(run, key, body[key])
        if isinstance(body.get("output"), dict):
            run.output.update(body["output"])
        if "actions" in body:
            run.actions = list(body.get("actions") or [])
        if body.get("conclusion"):
            run.status, run.conclusion = "completed", body["conclusion"]
            run.completed_at = now
        elif body.get("status"):
            run.status = body["status"]
            if run.status == "in_progress" and run.started_at is None:
                run.started_at = now
            if run.status != "completed":
                run.conclusion = None
                run.completed_at = None
        if run.status == "completed" and run.started_at is None:
            run.started_at = now
        suite = self.state.check_suites[run.suite_id]
        suite.updated_at = now
        if run.status == "completed" and not was_completed:
            await self._check_completed(repo, run, self.state.apps[run.app_id].bot)
        elif run.status != "completed":
            suite.completed_announced = False

    async def _emit_check_run(
        self,
        repo: Repo,
        run: CheckRun,
        action: str,
        sender: User,
        extra: Json | None = None,
        only_app: int | None = None,
    ) -> None:
        body: Json = {"check_run": await self.check_run_json(repo, run)}
        body["check_run"]["check_suite"] = await self.check_suite_json(
            repo, self.state.check_suites[run.suite_id], with_repository=False
        )
        body.update(extra or {})
        self.emit("check_run", action, repo, body, sender, only_app=only_app)

    async def _check_completed(self, repo: Repo, run: CheckRun, sender: User) -> None:
        await self._emit_check_run(repo, run, "completed", sender)
        suite = self.state.check_suites[run.suite_id]
        runs = [r for r in self.state.check_runs.values() if r.suite_id == suite.id]
        if all(r.status == "completed" for r in runs) and not suite.completed_announced:
            suite.completed_announced = True
            body = {"check_suite": await self.check_suite_json(repo, suite, with_repository=False)}
            self.emit("check_suite", "completed", repo, body, sender)

    async def request_check_run_action(
        self, owner: str, repo: str, check_run_id: int, identifier: str, *, sender: str
    ) -> None:
        """A user clicks a check run's button: `check_run.requested_action` to the App that made the run."""
        target = self.find_repo(owner, repo)
        run = self.state.check_runs.get(check_run_id)
        if run is None or run.repo_id != target.id:
            raise KeyError(f"no check run {check_run_id}")
        if not any(a.get("identifier") == identifier for a in run.actions):
            raise KeyError(f"check run {check_run_id} has no action {identifier!r}")
        await self._emit_check_run(
            target,
            run,
            "requested_action",
            self.user(sender),
            extra={"requested_action": {"identifier": identifier}},
            only_app=run.app_id,
        )

    async def rerequest_check_run(self, repo: Repo, run: CheckRun, who: User) -> None:
        if run.app_id == self.ci_app.id:
            self.start_ci(repo, run.head_sha, self.state.check_suites[run.suite_id].head_branch)
            return
        await self._emit_check_run(repo, run, "rerequested", who, only_app=run.app_id)

    async def create_status(self, repo: Repo, who: User, sha: str, body: Json) -> CommitStatus:
        state = body.get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise validation_failed(
                {
                    "resource": "Status",
                    "code": "custom",
                    "field": "state",
                    "message": "state is not included in the list",
                }
            )
        if await self.git(repo).resolve(sha) != sha:
            raise validation_failed(message=f"No commit found for SHA: {sha}")
        now = self.clock()
        st = CommitStatus(
            id=self.state.ids.next("status"),
            repo_id=repo.id,
            sha=sha,
            state=str(state),
            target_url=body.get("target_url"),
            description=body.get("description"),
            context=str(body.get("context") or "default"),
            creator=who,
            created_at=now,
            updated_at=now,
        )
        self.state.statuses.append(st)
        info = await self.git(repo).commit_info(sha)
        branches = [P.short_branch(self.urls, repo, b, sha) for b in await self.branches_at(repo, sha)]
        commit = P.commit(self.urls, repo, info)
        payload: Json = {
            "id": st.id,
            "sha": sha,
            "name": repo.full_name,
            "target_url": st.target_url,
            "avatar_url": None,
            "context": st.context,
            "description": st.description,
            "state": st.state,
            "commit": commit,
            "branches": branches,
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self.emit("status", None, repo, payload, who)
        return st

    def latest_statuses(self, repo: Repo, sha: str) -> list[CommitStatus]:
        latest: dict[str, CommitStatus] = {}
        for st in self.state.statuses:
            if st.repo_id == repo.id and st.sha == sha:
                latest[st.context] = st
        return sorted(latest.values(), key=lambda s: s.id, reverse=True)

    # ---------------------------------------------------------------- simulated CI

    def start_ci(self, repo: Repo, sha: str, branch: str | None) -> None:
        if repo.ci is None:
            return
        config = repo.ci
        self._ci_running += 1
        task = asyncio.get_running_loop().create_task(self._run_ci(repo, sha, branch, config), name="sandbox-ci")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_ci(self, repo: Repo, sha: str, branch: str | None, config: CiConfig) -> None:
        try:
            app = self.ci_app
            run = await self.create_check_run(
                repo,
                app,
                {
                    "name": "ci",
                    "head_sha": sha,
                    "status": "queued",
                    "details_url": f"{self.urls.repo_html(repo)}/actions",
                },
            )
            await self.update_check_run(repo, run, {"status": "in_progress"})
            try:
                result = await run_ci(self.git(repo), sha, config)
            except (OSError, GitError) as exc:
                await self.update_check_run(
                    repo,
                    run,
                    {
                        "conclusion": "failure",
                        "output": {"title": "CI could not start", "summary": f"`{' '.join(config.argv)}`: {exc}"},
                    },
                )
                return
            await self.update_check_run(
                repo,
                run,
                {"conclusion": result.conclusion, "output": {"title": result.title, "summary": result.summary}},
            )
        finally:
            self._ci_running -= 1

    @property
    def busy(self) -> bool:
        """Webhooks still to send (unless paused) or CI still running."""
        return self._ci_running > 0 or (self.outbox.pending > 0 and not self.outbox.paused)

    async def wait_idle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a deadline over many polls
        """Return once no webhook is pending (held ones while paused do not count) and no CI runs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < 2:
            if self.busy:
                quiet = 0
            else:
                quiet += 1
            if loop.time() > deadline:
                raise TimeoutError(
                    f"sandbox still busy after {timeout}s: {self.outbox.pending} webhooks, {self._ci_running} CI runs"
                )
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.outbox.aclose()

    # ---------------------------------------------------------------- small helpers for the API

    async def user_token(self, login: str) -> str:
        """A personal access token: REST calls made with it act as `login`, limited by the user's repo roles."""
        token = "ghp_" + secrets.token_hex(18)
        self.state.user_tokens[token] = self.user(login).login
        return token
