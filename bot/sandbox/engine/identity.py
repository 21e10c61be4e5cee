"""Apps, installations and tokens: who the sandbox knows, what each App may reach, and the manifest flow."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from bot.sandbox import payloads as P
from bot.sandbox.auth import check_token_request, generate_key_pair, new_installation_token, public_key_of
from bot.sandbox.clock import iso
from bot.sandbox.engine.base import AppCredentials, Json, Part
from bot.sandbox.errors import not_found
from bot.sandbox.state import (
    ALL_EVENTS,
    App,
    Installation,
    ManifestCode,
    Repo,
    Token,
    User,
    node_id,
)

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


class Identity(Part):
    """Apps and their installations, installation tokens, personal tokens and manifest codes."""

    def new_app(
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
        bot = self.engine.user(f"{slug}[bot]", kind="Bot")
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
        app = self.new_app(
            name=name,
            slug=slug,
            owner=self.engine.user(owner),
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
        account = self.engine.user(owner)
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
        who = self.engine.user(sender) if sender else account
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
        self.engine.webhooks.deliver(app, inst, "installation", "created", body, who, None)
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
            issued_at=self.clock(),
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

    def revoke_token(self, token: Token) -> None:
        """What `DELETE /installation/token` does: the token is refused (401) from now on."""
        if token.revoked_at is None:
            token.revoked_at = self.clock()

    async def tokens(self) -> list[Token]:
        """Every installation token issued so far, oldest first, with `revoked_at` set on the revoked ones."""
        return sorted(self.state.tokens.values(), key=lambda t: (t.issued_at is None, t.issued_at or t.expires_at))

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

    async def user_token(self, login: str) -> str:
        """A personal access token: REST calls made with it act as `login`, limited by the user's repo roles."""
        token = "ghp_" + secrets.token_hex(18)
        self.state.user_tokens[token] = self.engine.user(login).login
        return token
