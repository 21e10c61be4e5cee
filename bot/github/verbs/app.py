"""The App itself: its identity, its webhook deliveries, the tokens it mints for runs, and users' profiles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from githubkit import TokenAuthStrategy

from bot.github import _wire
from bot.github.auth import InstallationToken, TokenScope
from bot.github.errors import NotFound, Unauthorized
from bot.github.models import AppIdentity, GitHubUser, HookDelivery
from bot.github.transport import GitHubTransport, seg


class AppVerbs(GitHubTransport):
    """As the App (its JWT) but for `get_user`; `get_app` is kept for the life of the gateway."""

    _app_identity: AppIdentity | None = None
    _app_identity_lock: asyncio.Lock | None = None

    async def get_app(self) -> AppIdentity:
        if self._app_identity is None:
            # Concurrent first callers share one request; a failure is not kept, so the next caller asks again.
            if self._app_identity_lock is None:
                self._app_identity_lock = asyncio.Lock()
            async with self._app_identity_lock:
                if self._app_identity is None:
                    found = await self.request(None, "GET", "/app", model=_wire.App)
                    self._app_identity = found.to_domain()
        return self._app_identity

    async def get_user(self, installation_id: int, login: str) -> GitHubUser:
        return (await self.request(installation_id, "GET", f"/users/{seg(login)}", model=_wire.User)).to_domain()

    async def list_hook_deliveries(self) -> AsyncIterator[HookDelivery]:
        async for delivery in self.paginate(None, "/app/hook/deliveries", model=_wire.Delivery):
            yield delivery.to_domain()

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        await self.request(None, "POST", f"/app/hook/deliveries/{delivery_id}/attempts")

    async def mint_run_token(
        self, installation_id: int, repo: str, permissions: Mapping[str, str]
    ) -> InstallationToken:
        if not permissions:
            raise ValueError("a run token needs its permissions listed (least privilege)")
        return await self._mint(installation_id, TokenScope.of([repo], permissions))

    async def revoke_token(self, token: InstallationToken) -> None:
        client = self._client(TokenAuthStrategy(token.token))
        try:
            await self._send(client, None, "DELETE", "/installation/token", params=None, json=None)
        except (Unauthorized, NotFound):
            return  # expired, already revoked, or a server without the endpoint: the token dies within the hour

