"""GitHub Actions: the `github-actions` runner dispatches Kickoff's workflow, follows it and cancels it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.github import _wire
from bot.github.errors import Conflict
from bot.github.models import WorkflowRun
from bot.github.transport import GitHubTransport, seg


class ActionsVerbs(GitHubTransport):
    """Workflow dispatches and runs (the `github-actions` runner)."""

    async def dispatch_workflow(
        self,
        installation_id: int,
        owner: str,
        repo: str,
        workflow: str,
        ref: str,
        inputs: Mapping[str, str],
        return_run_details: bool = True,
    ) -> int | None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/actions/workflows/{seg(workflow)}/dispatches"
        body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs)}
        if return_run_details:
            body["return_run_details"] = True
        # Not paced: starting a runner is Kickoff's own work, never held behind its comments (docs/performance.md).
        response, data = await self._fetch(installation_id, "POST", url, json=body, paced=False)
        if data is None:
            return None  # 204: a server that does not return run details
        return self._parse(_wire.DispatchedRun, data, response).workflow_run_id

    async def get_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> WorkflowRun:
        url = f"/repos/{seg(owner)}/{seg(repo)}/actions/runs/{run_id}"
        found = await self.request(installation_id, "GET", url, model=_wire.Run)
        return found.to_domain()

    async def list_workflow_runs(
        self, installation_id: int, owner: str, repo: str, workflow: str, created_since: datetime
    ) -> list[WorkflowRun]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/actions/workflows/{seg(workflow)}/runs"
        params: dict[str, str | int] = {"event": "workflow_dispatch", "per_page": 100,
                  "created": f">={created_since.strftime('%Y-%m-%dT%H:%M:%SZ')}"}
        found = await self.request(installation_id, "GET", url, params=params, model=_wire.Runs)
        return [run.to_domain() for run in found.workflow_runs]

    async def cancel_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/actions/runs/{run_id}/cancel"
        try:
            await self.request(installation_id, "POST", url, paced=False)
        except Conflict:
            return  # "Cannot cancel a workflow run that is completed."

