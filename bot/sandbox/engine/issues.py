"""Issues, comments, labels and reactions (pull requests are issues too, so they share this)."""

from __future__ import annotations

from bot.sandbox import payloads as P
from bot.sandbox.engine.base import Json, Part
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.state import (
    Comment,
    Issue,
    Label,
    Reaction,
    Repo,
    User,
)


class Issues(Part):
    """Issues and what hangs off them: comments, labels, reactions, open/close."""

    def find_issue(self, repo: Repo, number: int) -> Issue:
        iss = repo.issues.get(number)
        if iss is None:
            raise not_found()
        return iss

    def issue_json(self, repo: Repo, iss: Issue) -> Json:
        return P.issue(self.urls, repo, iss, association=self.engine.repos.association(repo, iss.user))

    def comment_json(self, repo: Repo, c: Comment) -> Json:
        via: Json | None = None
        if c.user.type == "Bot":
            for app in self.state.apps.values():
                if app.bot.id == c.user.id:
                    via = P.app(self.urls, app)
        return P.comment(self.urls, repo, c, association=self.engine.repos.association(repo, c.user), via_app=via)

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
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
        iss = self.create_issue(target, who, title, body, labels or [])
        return iss.number

    def _next_number(self, repo: Repo) -> int:
        number = repo.next_number
        repo.next_number += 1
        return number

    def new_issue(self, repo: Repo, who: User, title: str, body: str | None) -> Issue:
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
        iss = self.new_issue(repo, who, title, body)
        for name in labels:
            iss.labels.append(self.ensure_label(repo, name).name)
        repo.issues[iss.number] = iss
        self.engine.emit("issues", "opened", repo, {"issue": self.issue_json(repo, iss)}, who)
        for name in iss.labels:  # GitHub follows `opened` with one `labeled` per label given at creation
            lab = P.label(self.urls, repo, repo.labels[name.lower()])
            self.engine.emit("issues", "labeled", repo, {"issue": self.issue_json(repo, iss), "label": lab}, who)
        return iss

    async def add_label(self, owner: str, repo: str, number: int, label: str, *, sender: str | None = None) -> None:
        """Label an issue or pull request as `sender`; emits `issues.labeled` / `pull_request.labeled`."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
        await self.add_labels(target, self.find_issue(target, number), [label], who)

    async def remove_label(self, owner: str, repo: str, number: int, label: str, *, sender: str | None = None) -> None:
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
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
            await self.engine.pulls.emit_pull(repo, iss, action, who, extra=extra)
        else:
            self.engine.emit("issues", action, repo, {"issue": self.issue_json(repo, iss), **extra}, who)

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
            iss.assignees = [self.engine.user(a) for a in assignees]
        if changes:
            iss.updated_at = self.clock()
            await self._emit_issue_or_pull(repo, iss, "edited", who, {"changes": changes})
        if labels is not None:
            for existing in list(iss.labels):
                if existing.lower() not in {n.lower() for n in labels}:
                    await self.remove_issue_label(repo, iss, existing, who)
            await self.add_labels(repo, iss, labels, who)
        if state == "closed" and iss.state == "open":
            await self.close(repo, iss, who, reason=state_reason or "completed")
        elif state == "open" and iss.state == "closed":
            await self.reopen(repo, iss, who)

    async def close(self, repo: Repo, iss: Issue, who: User, reason: str = "completed") -> None:
        now = self.clock()
        iss.state = "closed"
        iss.closed_at = now
        iss.closed_by = who
        iss.updated_at = now
        if iss.pull is not None:
            iss.pull.frozen_head_sha = await self.engine.pulls.head_sha(repo, iss.pull)
            iss.pull.frozen_base_sha = await self.engine.pulls.base_sha(repo, iss.pull)
            await self.engine.pulls.emit_pull(repo, iss, "closed", who)
        else:
            iss.state_reason = reason
            self.engine.emit("issues", "closed", repo, {"issue": self.issue_json(repo, iss)}, who)

    async def reopen(self, repo: Repo, iss: Issue, who: User) -> None:
        if iss.pull is not None:
            if iss.pull.merged:
                raise validation_failed(message="Cannot reopen a merged pull request")
            if await self.engine.git(repo).ref_sha(f"refs/heads/{iss.pull.head_ref}") is None:
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
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
        await self.edit_issue(target, self.find_issue(target, number), who, state="closed")

    async def comment(self, owner: str, repo: str, number: int, body: str, *, sender: str | None = None) -> int:
        """Comment on an issue or pull request as `sender`; emits `issue_comment.created`. Returns the comment id."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
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
        self.engine.emit("issue_comment", action, repo, body, who)

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
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
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
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender)
        if comment_id is not None:
            reactions = self.find_comment(target, comment_id).reactions
        elif number is not None:
            reactions = self.find_issue(target, number).reactions
        else:
            raise ValueError("react needs number or comment_id")
        return self.add_reaction(reactions, who, content)[0].id
