"""Apps and installations as GitHub shows them to an App."""

from __future__ import annotations

from bot.sandbox.clock import iso
from bot.sandbox.payloads.common import Json, Urls, user
from bot.sandbox.state import (
    App,
    Installation,
    node_id,
)


def app(u: Urls, a: App) -> Json:
    return {
        "id": a.id,
        "slug": a.slug,
        "node_id": node_id("App", a.id),
        "client_id": a.client_id,
        "owner": user(u, a.owner),
        "name": a.name,
        "description": a.description,
        "external_url": a.external_url,
        "html_url": f"{u.web}/apps/{a.slug}",
        "created_at": iso(a.created_at),
        "updated_at": iso(a.created_at),
        "permissions": dict(a.permissions),
        "events": list(a.events),
        "installations_count": 0,
    }


def installation(u: Urls, inst: Installation, a: App) -> Json:
    account = user(u, inst.account)
    # GET /app/installations documents `account` as allOf(simple-user, enterprise) (a slip in GitHub's
    # description); these few enterprise fields keep the object valid under every reading.
    account.update(
        {
            "name": inst.account.name or inst.account.login,
            "slug": inst.account.login.lower(),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
        }
    )
    return {
        "id": inst.id,
        "client_id": a.client_id,
        "account": account,
        "repository_selection": inst.repository_selection,
        "access_tokens_url": f"{u.api}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{u.api}/installation/repositories",
        "html_url": f"{u.web}/settings/installations/{inst.id}",
        "app_id": a.id,
        "app_slug": a.slug,
        "target_id": inst.account.id,
        "target_type": inst.account.type if inst.account.type != "Bot" else "User",
        "permissions": dict(inst.permissions),
        "events": list(inst.events),
        "created_at": iso(inst.created_at),
        "updated_at": iso(inst.updated_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }
