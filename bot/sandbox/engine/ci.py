"""The sandbox's own CI: runs a configured command on each pull request head and reports it as a check run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.sandbox.ci import run_ci
from bot.sandbox.git import GitError
from bot.sandbox.state import (
    CiConfig,
    Repo,
)

if TYPE_CHECKING:
    from bot.sandbox.engine.core import Engine

from bot.sandbox.engine.base import Part


class Ci(Part):
    """A stand-in for Actions: a command per repository, run as the internal "Sandbox CI" App."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.running = 0
        self.app = engine.identity.new_app(
            name="Sandbox CI",
            slug="sandbox-ci",
            owner=engine.user("sandbox"),
            public_key_pem="",
            private_key_pem=None,
            webhook_url=None,
            webhook_secret=None,
            permissions={"checks": "write", "contents": "read", "metadata": "read", "statuses": "write"},
            events=[],
            internal=True,
        )

    async def set_ci(
        self,
        owner: str,
        repo: str,
        argv: list[str] | None,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the CI command's limit, not this call's
        env: dict[str, str] | None = None,
    ) -> None:
        """Run `argv` in a fresh checkout on every push to a pull request head (None turns CI off)."""
        target = self.engine.find_repo(owner, repo)
        target.ci = CiConfig(list(argv), timeout, dict(env or {})) if argv else None

    def start_ci(self, repo: Repo, sha: str, branch: str | None) -> None:
        if repo.ci is None:
            return
        config = repo.ci
        self.running += 1
        self.engine.spawn(self._run_ci(repo, sha, branch, config), name="sandbox-ci")

    async def _run_ci(self, repo: Repo, sha: str, branch: str | None, config: CiConfig) -> None:
        try:
            app = self.app
            run = await self.engine.checks.create_check_run(
                repo,
                app,
                {
                    "name": "ci",
                    "head_sha": sha,
                    "status": "queued",
                    "details_url": f"{self.urls.repo_html(repo)}/actions",
                },
            )
            await self.engine.checks.update_check_run(repo, run, {"status": "in_progress"})
            try:
                result = await run_ci(self.engine.git(repo), sha, config)
            except (OSError, GitError) as exc:
                await self.engine.checks.update_check_run(
                    repo,
                    run,
                    {
                        "conclusion": "failure",
                        "output": {"title": "CI could not start", "summary": f"`{' '.join(config.argv)}`: {exc}"},
                    },
                )
                return
            await self.engine.checks.update_check_run(
                repo,
                run,
                {"conclusion": result.conclusion, "output": {"title": result.title, "summary": result.summary}},
            )
        finally:
            self.running -= 1
