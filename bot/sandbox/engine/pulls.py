"""Pull requests: opening and updating them, reviews, mergeability and the merge itself."""

from __future__ import annotations

from bot.sandbox import payloads as P
from bot.sandbox.engine.base import Json, Part, RefUpdate, identity_of
from bot.sandbox.errors import ApiError, not_found, validation_failed
from bot.sandbox.git import GITHUB_IDENTITY, ZERO_SHA
from bot.sandbox.state import (
    ROLE_RANK,
    Issue,
    PullRequest,
    Repo,
    Review,
    ReviewComment,
    ReviewState,
    User,
)

FAILING = {"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale"}
PASSING = {"success", "neutral", "skipped"}


class Pulls(Part):
    """Pull requests on top of issues: heads and bases in git, reviews, merge blockers and merges."""

    async def head_sha(self, repo: Repo, pr: PullRequest) -> str:
        sha = await self.engine.git(repo).ref_sha(f"refs/heads/{pr.head_ref}")
        return sha or pr.frozen_head_sha or ZERO_SHA

    async def base_sha(self, repo: Repo, pr: PullRequest) -> str:
        sha = await self.engine.git(repo).ref_sha(f"refs/heads/{pr.base_ref}")
        return sha or pr.frozen_base_sha or ZERO_SHA

    async def pull_facts(self, repo: Repo, iss: Issue) -> P.PullFacts:
        pr = iss.pull
        assert pr is not None
        bare = self.engine.git(repo)
        if iss.state == "closed" and pr.frozen_head_sha:
            head, base = pr.frozen_head_sha, pr.frozen_base_sha or await self.base_sha(repo, pr)
        else:
            head, base = await self.head_sha(repo, pr), await self.base_sha(repo, pr)
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
        checks = self.engine.checks.check_states(repo, head)
        if any(c in FAILING or c == "pending" for c in checks.values()):
            return "unstable"
        return "clean"

    async def merge_blockers(self, repo: Repo, pr: PullRequest, head: str, base: str) -> tuple[list[str], bool]:
        """What branch protection holds the merge button for, in GitHub's words, and whether head is behind."""
        rule = repo.protection.get(pr.base_ref)
        if rule is None:
            return [], False
        reasons: list[str] = []
        checks = self.engine.checks.check_states(repo, head)
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
        behind = rule.strict and not await self.engine.git(repo).is_ancestor(base, head)
        return reasons, behind

    def review_decision_counts(self, repo: Repo, pr: PullRequest) -> tuple[int, int]:
        """(approvals, change requests) counting each reviewer's latest decisive review, from reviewers who hold
        write access now (GitHub shows the others' approvals grey and ignores them)."""
        latest: dict[int, str] = {}
        for r in pr.reviews:
            if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[r.user.id] = r.state
        writers = {
            r.user.id for r in pr.reviews if ROLE_RANK[self.engine.repos.role_of(repo, r.user)] >= ROLE_RANK["write"]
        }
        latest = {user: state for user, state in latest.items() if user in writers}
        return (
            sum(1 for s in latest.values() if s == "APPROVED"),
            sum(1 for s in latest.values() if s == "CHANGES_REQUESTED"),
        )

    async def review_decision(self, owner: str, repo: str, number: int) -> str | None:
        """GraphQL's `reviewDecision`: APPROVED, CHANGES_REQUESTED, REVIEW_REQUIRED or None."""
        target = self.engine.find_repo(owner, repo)
        pr = self.engine.issues.find_issue(target, number).pull
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

    async def pull_json(self, repo: Repo, iss: Issue, *, simple: bool = False) -> Json:
        facts = await self.pull_facts(repo, iss)
        assoc = self.engine.repos.association(repo, iss.user)
        if simple:
            return P.pull_request_simple(self.urls, repo, iss, facts, association=assoc)
        return P.pull_request(self.urls, repo, iss, facts, association=assoc)

    async def emit_pull(self, repo: Repo, iss: Issue, action: str, who: User, *, extra: Json | None = None) -> None:
        body: Json = {"number": iss.number, "pull_request": await self.pull_json(repo, iss)}
        body.update(extra or {})
        self.engine.emit("pull_request", action, repo, body, who)

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
        bare = self.engine.git(repo)
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
            iss = self.engine.issues.find_issue(repo, issue_number)
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
            iss = self.engine.issues.new_issue(repo, who, title, body)
            repo.issues[iss.number] = iss
        iss.pull = PullRequest(
            id=self.state.ids.next("pull"),
            head_ref=head_branch,
            base_ref=base,
            draft=draft,
            maintainer_can_modify=maintainer_can_modify,
        )
        await self.emit_pull(repo, iss, "opened", who)
        self.engine.ci.start_ci(repo, head_sha, head_branch)
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
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
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
            if await self.engine.git(repo).ref_sha(f"refs/heads/{base}") is None:
                raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
            changes["base"] = {"ref": {"from": pr.base_ref}, "sha": {"from": await self.base_sha(repo, pr)}}
            pr.base_ref = base
        if maintainer_can_modify is not None:
            pr.maintainer_can_modify = maintainer_can_modify
        if changes:
            iss.updated_at = self.clock()
            await self.emit_pull(repo, iss, "edited", who, extra={"changes": changes})
        if state == "closed" and iss.state == "open":
            await self.engine.issues.close(repo, iss, who)
        elif state == "open" and iss.state == "closed":
            await self.engine.issues.reopen(repo, iss, who)

    async def set_draft(self, owner: str, repo: str, number: int, draft: bool, *, sender: str | None = None) -> None:
        """Convert to draft / mark ready for review (GraphQL-only on GitHub); emits the matching webhook."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
        iss = self.find_pull(target, number)
        assert iss.pull is not None
        if iss.pull.draft == draft:
            return
        iss.pull.draft = draft
        iss.updated_at = self.clock()
        await self.emit_pull(target, iss, "converted_to_draft" if draft else "ready_for_review", who)

    async def request_reviewers(self, repo: Repo, iss: Issue, who: User, logins: list[str]) -> None:
        pr = iss.pull
        assert pr is not None
        for login in logins:
            reviewer = self.engine.user(login)
            if reviewer.id == iss.user.id:
                raise validation_failed(message="Review cannot be requested from pull request author.")
            if any(r.id == reviewer.id for r in pr.requested_reviewers):
                continue
            pr.requested_reviewers.append(reviewer)
            await self.emit_pull(
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
        head = await self.head_sha(repo, pr)
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
                "review": P.review(
                    self.urls, repo, iss.number, review, association=self.engine.repos.association(repo, who)
                ),
                "pull_request": await self.pull_json(repo, iss, simple=True),
            }
            body_json["review"]["state"] = review.state.lower()  # webhooks spell review states in lower case
            self.engine.emit("pull_request_review", "submitted", repo, body_json, who)
        return review

    async def approve(self, owner: str, repo: str, number: int, reviewer: str, body: str = "") -> int:
        """Approve a pull request as `reviewer`; emits `pull_request_review.submitted`. Returns the review id."""
        target = self.engine.find_repo(owner, repo)
        iss = self.find_pull(target, number)
        return (await self.submit_review(target, iss, self.engine.user(reviewer), event="APPROVE", body=body)).id

    async def review(self, owner: str, repo: str, number: int, reviewer: str, event: str, body: str = "") -> int:
        """Submit a review (APPROVE, REQUEST_CHANGES, COMMENT) as `reviewer`."""
        target = self.engine.find_repo(owner, repo)
        iss = self.find_pull(target, number)
        return (await self.submit_review(target, iss, self.engine.user(reviewer), event=event, body=body)).id

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
        bare = self.engine.git(repo)
        async with self.engine.repo_lock(repo):
            if iss.state != "open" or pr.merged:
                raise ApiError(405, "Pull Request is not mergeable")
            if pr.draft:
                raise ApiError(405, "Pull Request is still a draft")
            head = await self.head_sha(repo, pr)
            base = await self.base_sha(repo, pr)
            if sha is not None and sha != head:
                raise ApiError(409, "Head branch was modified. Review and try the merge again.")
            reasons, behind = await self.merge_blockers(repo, pr, head, base)
            if behind:
                reasons.append("Head branch is out of date. Review and try the merge again.")
            if reasons:
                raise ApiError(405, "Repository rule violations found\n\n" + "\n".join(reasons))
            author = identity_of(who)
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
                    new = await bare.commit_tree(tree, [base], msg, identity_of(iss.user), GITHUB_IDENTITY, now)
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
        await self.engine.repos.after_push(repo, [RefUpdate(f"refs/heads/{pr.base_ref}", base, new)], who)
        await self.emit_pull(repo, iss, "closed", who)
        return new

    async def merge_pull(
        self, owner: str, repo: str, number: int, *, sender: str | None = None, method: str = "merge"
    ) -> str:
        """Press the merge button as `sender`. Returns the merge commit sha."""
        target = self.engine.find_repo(owner, repo)
        who = self.engine.user(sender) if sender else target.owner
        return await self.merge(target, self.find_pull(target, number), who, method=method)

    async def update_branch(self, repo: Repo, iss: Issue, who: User, expected_head_sha: str | None = None) -> str:
        """Merge the base branch into the head branch for real; 422 on conflict."""
        pr = iss.pull
        assert pr is not None
        bare = self.engine.git(repo)
        async with self.engine.repo_lock(repo):
            if iss.state != "open":
                raise validation_failed(message="Pull request is closed")
            head = await self.head_sha(repo, pr)
            base = await self.base_sha(repo, pr)
            if expected_head_sha is not None and expected_head_sha != head:
                raise validation_failed(message="expected_head_sha does not match the pull request's head sha")
            if await bare.is_ancestor(base, head):
                raise validation_failed(message="There are no new commits on the base branch.")
            tree, _conflicts = await bare.merge_tree(head, base)
            if tree is None:
                raise validation_failed(message="merge conflict between base and head")
            ident = identity_of(who)
            msg = f"Merge branch '{pr.base_ref}' into {pr.head_ref}"
            new = await bare.commit_tree(tree, [head, base], msg, ident, GITHUB_IDENTITY, self.clock())
            if not await bare.update_ref(f"refs/heads/{pr.head_ref}", new, head):
                raise validation_failed(message="expected_head_sha does not match the pull request's head sha")
        await self.engine.repos.after_push(repo, [RefUpdate(f"refs/heads/{pr.head_ref}", head, new)], who)
        return new
