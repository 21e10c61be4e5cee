"""Webhook deliveries as `/app/hook/deliveries` lists them, and the commits of a `push` payload."""

from __future__ import annotations

from bot.sandbox.clock import iso
from bot.sandbox.git import CommitInfo
from bot.sandbox.payloads.common import Json, Urls
from bot.sandbox.state import (
    Delivery,
    Repo,
)


def delivery_item(d: Delivery) -> Json:
    return {
        "id": d.id,
        "guid": d.guid,
        "delivered_at": iso(d.delivered_at or d.created_at),
        "redelivery": d.redelivery,
        "duration": round(d.duration, 3),
        "status": d.status,
        "status_code": d.status_code,
        "event": d.event,
        "action": d.action,
        "installation_id": d.installation_id,
        "repository_id": d.repository_id,
        "throttled_at": None,
    }


def delivery(d: Delivery, url: str | None, payload: Json) -> Json:
    out = delivery_item(d)
    out["url"] = url
    out["request"] = {"headers": dict(d.request_headers), "payload": payload}
    out["response"] = {"headers": dict(d.response_headers), "payload": d.response_body}
    return out


def push_commit(
    u: Urls,
    repo: Repo,
    info: CommitInfo,
    added: list[str],
    removed: list[str],
    modified: list[str],
    logins: dict[str, str] | None = None,
) -> Json:
    """A commit inside a `push` webhook; `logins` maps commit e-mails to the users they belong to."""
    return {
        "id": info.sha,
        "tree_id": info.tree,
        "distinct": True,
        "message": info.message,
        "timestamp": iso(info.committer_date),
        "url": f"{u.repo_html(repo)}/commit/{info.sha}",
        "author": _push_person(info.author.name, info.author.email, logins),
        "committer": _push_person(info.committer.name, info.committer.email, logins),
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def _push_person(name: str, email: str, logins: dict[str, str] | None) -> Json:
    out: Json = {"name": name, "email": email}
    login = (logins or {}).get(email.lower())
    if login is not None:
        out["username"] = login
    return out
