"""Minimal models of the GitHub responses the verbs read (only the fields used; extra fields are ignored)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from bot.github.models import PERMISSIONS, IssueComment, Permission, Repository


class Id(BaseModel):
    id: int


class _Login(BaseModel):
    login: str
    type: str = "User"


class Repo(BaseModel):
    id: int
    name: str
    full_name: str
    owner: _Login
    default_branch: str = "main"
    private: bool = False
    fork: bool = False
    archived: bool = False
    html_url: str = ""
    clone_url: str = ""

    def to_domain(self) -> Repository:
        return Repository(
            id=self.id,
            owner=self.owner.login,
            name=self.name,
            full_name=self.full_name,
            default_branch=self.default_branch,
            private=self.private,
            fork=self.fork,
            archived=self.archived,
            html_url=self.html_url,
            clone_url=self.clone_url,
        )


class Comment(BaseModel):
    id: int
    body: str | None = None
    user: _Login | None = None
    created_at: datetime
    updated_at: datetime
    html_url: str = ""

    def to_domain(self) -> IssueComment:
        user = self.user or _Login(login="ghost")
        return IssueComment(
            id=self.id,
            body=self.body or "",
            author=user.login,
            author_type=user.type,
            created_at=self.created_at,
            updated_at=self.updated_at,
            html_url=self.html_url,
        )


class Content(BaseModel):
    type: str
    sha: str
    encoding: str | None = None
    content: str | None = None


class Blob(BaseModel):
    sha: str
    encoding: str
    content: str


class CollaboratorPermission(BaseModel):
    permission: str
    role_name: str | None = None

    def effective(self) -> Permission:
        """`role_name` distinguishes maintain and triage; a custom role falls back to its base `permission`."""
        for candidate in (self.role_name, self.permission):
            for known in PERMISSIONS:
                if candidate == known:
                    return known
        return "none"
