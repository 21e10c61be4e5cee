"""What the gateway's verbs return: small frozen values, never GitHub's raw dicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
PERMISSIONS: tuple[Permission, ...] = ("none", "read", "triage", "write", "maintain", "admin")
"""Weakest first, so `PERMISSIONS.index(a) >= PERMISSIONS.index(b)` means a is at least b."""

Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


def permission_at_least(held: Permission, needed: Permission) -> bool:
    return PERMISSIONS.index(held) >= PERMISSIONS.index(needed)


@dataclass(frozen=True)
class Repository:
    id: int
    owner: str
    name: str
    full_name: str
    default_branch: str
    private: bool
    fork: bool
    archived: bool
    html_url: str
    clone_url: str


@dataclass(frozen=True)
class IssueComment:
    id: int
    body: str
    author: str
    """The commenter's login (`ghost` for a deleted account)."""
    author_type: str
    """`User`, `Bot` or `Organization`, as GitHub reports it."""
    created_at: datetime
    updated_at: datetime
    html_url: str


class FileContent(NamedTuple):
    """A file's text and its blob sha (the sha GitHub wants back when the file is updated)."""

    text: str
    sha: str
