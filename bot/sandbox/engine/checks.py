"""Check runs, check suites and commit statuses, and the combined state the merge button reads."""

from __future__ import annotations

from bot.sandbox import payloads as P
from bot.sandbox.clock import iso
from bot.sandbox.engine.base import Json, Part
from bot.sandbox.errors import validation_failed
from bot.sandbox.git import CommitInfo, GitError
from bot.sandbox.state import (
    App,
    CheckRun,
    CheckSuite,
    CommitStatus,
    Repo,
    User,
)


class Checks(Part):
    """Check runs and suites per App and commit, commit statuses, and their webhooks."""

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

    def suite_for(self, repo: Repo, app: App, sha: str, branch: str | None) -> CheckSuite:
        for suite in self.state.check_suites.values():
            if suite.repo_id == repo.id and suite.app_id == app.id and suite.head_sha == sha:
                return suite
        now = self.clock()
        suite = CheckSuite(self.state.ids.next("check_suite"), repo.id, app.id, sha, branch, now, now)
        self.state.check_suites[suite.id] = suite
        return suite

    async def branches_at(self, repo: Repo, sha: str) -> list[str]:
        return [name for name, head in (await self.engine.git(repo).branches()).items() if head == sha]

    async def pulls_for_sha(self, repo: Repo, sha: str) -> list[Json]:
        out = []
        for iss in list(repo.issues.values()):  # awaits inside: PRs may open meanwhile
            pr = iss.pull
            if pr is None or iss.state != "open":
                continue
            head = await self.engine.pulls.head_sha(repo, pr)
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
                        await self.engine.pulls.base_sha(repo, pr),
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
            info = await self.engine.git(repo).commit_info(suite.head_sha)
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
        if not isinstance(head_sha, str) or await self.engine.git(repo).resolve(head_sha) != head_sha:
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
        self.engine.emit("check_run", action, repo, body, sender, only_app=only_app)

    async def _check_completed(self, repo: Repo, run: CheckRun, sender: User) -> None:
        await self._emit_check_run(repo, run, "completed", sender)
        suite = self.state.check_suites[run.suite_id]
        runs = [r for r in self.state.check_runs.values() if r.suite_id == suite.id]
        if all(r.status == "completed" for r in runs) and not suite.completed_announced:
            suite.completed_announced = True
            body = {"check_suite": await self.check_suite_json(repo, suite, with_repository=False)}
            self.engine.emit("check_suite", "completed", repo, body, sender)

    async def request_check_run_action(
        self, owner: str, repo: str, check_run_id: int, identifier: str, *, sender: str
    ) -> None:
        """A user clicks a check run's button: `check_run.requested_action` to the App that made the run."""
        target = self.engine.find_repo(owner, repo)
        run = self.state.check_runs.get(check_run_id)
        if run is None or run.repo_id != target.id:
            raise KeyError(f"no check run {check_run_id}")
        if not any(a.get("identifier") == identifier for a in run.actions):
            raise KeyError(f"check run {check_run_id} has no action {identifier!r}")
        await self._emit_check_run(
            target,
            run,
            "requested_action",
            self.engine.user(sender),
            extra={"requested_action": {"identifier": identifier}},
            only_app=run.app_id,
        )

    async def rerequest_check_run(self, repo: Repo, run: CheckRun, who: User) -> None:
        if run.app_id == self.engine.ci.app.id:
            self.engine.ci.start_ci(repo, run.head_sha, self.state.check_suites[run.suite_id].head_branch)
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
        if await self.engine.git(repo).resolve(sha) != sha:
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
        info = await self.engine.git(repo).commit_info(sha)
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
        self.engine.emit("status", None, repo, payload, who)
        return st

    def latest_statuses(self, repo: Repo, sha: str) -> list[CommitStatus]:
        latest: dict[str, CommitStatus] = {}
        for st in self.state.statuses:
            if st.repo_id == repo.id and st.sha == sha:
                latest[st.context] = st
        return sorted(latest.values(), key=lambda s: s.id, reverse=True)
