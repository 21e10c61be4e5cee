"""Webhook deliveries: the payload GitHub signs and sends for one installation, and redeliveries."""

from __future__ import annotations

from bot.sandbox import payloads as P
from bot.sandbox.engine.base import Json, Part, Violation
from bot.sandbox.errors import not_found
from bot.sandbox.state import (
    App,
    Delivery,
    Installation,
    Repo,
    User,
    node_id,
)
from bot.sandbox.webhooks import build_delivery


class Webhooks(Part):
    """Turns an event into a signed delivery on the outbox, and keeps every delivery for redelivery."""

    def deliver(
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
        if self.engine.webhook_validator is not None:
            problems = self.engine.webhook_validator(event, action, payload)
            if problems:
                self.engine.violations.append(Violation(f"webhook {event}.{action or 'none'}", problems))
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
        self.engine.outbox.enqueue(delivery)

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
        self.engine.outbox.enqueue(again)
        return again

    def deliveries(self, app_id: int | None = None) -> list[Delivery]:
        return [d for d in self.state.deliveries.values() if app_id is None or d.app_id == app_id]
