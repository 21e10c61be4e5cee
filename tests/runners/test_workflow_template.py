"""The workflow `kickoff init-workflow` writes: parsed as YAML and held to the hygiene rules (least permissions,
actions pinned by SHA, inputs only through `env:`), and the command itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot import __version__
from bot.cli import app
from bot.workflow import WORKFLOW_PATH, WorkflowError, render_workflow, write_workflow

URL = "https://kickoff.example.com"


@pytest.fixture(scope="module")
def text() -> str:
    return render_workflow(URL, "1.2.3")


@pytest.fixture(scope="module")
def workflow(text: str) -> dict[Any, Any]:
    parsed: dict[Any, Any] = yaml.safe_load(text)
    return parsed


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_it_is_dispatched_with_few_inputs(workflow: dict[Any, Any]) -> None:
    # YAML 1.1 reads the key `on` as True.
    dispatch = (workflow.get("on") or workflow[True])["workflow_dispatch"]
    inputs = dispatch["inputs"]
    assert set(inputs) == {"run_id", "ticket", "adapter", "timeout_minutes", "correlation_id"}
    assert len(inputs) <= 25
    assert inputs["adapter"]["type"] == "choice"
    assert "correlation_id" in workflow["run-name"]
    assert "run_id" in workflow["run-name"]


def test_it_asks_for_the_least_permissions(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {"contents": "write"}
    for job in workflow["jobs"].values():
        assert "permissions" not in job or job["permissions"] == {"contents": "write"}


def test_every_action_is_pinned_by_a_full_commit_sha(workflow: dict[Any, Any], text: str) -> None:
    used = [step["uses"] for step in steps(workflow) if "uses" in step]
    assert used, "the workflow uses no action at all?"
    for uses in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
    assert "actions/setup-python@a309ff8b426b58ec0e2a45f0f869d46889d02405 # v6.2.0" in text


def test_no_expression_is_spliced_into_a_shell(workflow: dict[Any, Any]) -> None:
    for step in steps(workflow):
        if "run" in step:
            assert "${{" not in step["run"], step["run"]
    run_step = next(step for step in steps(workflow) if "kickoff run-agent" in step.get("run", ""))
    env = run_step["env"]
    assert env["KICKOFF_RUN_ID"] == "${{ inputs.run_id }}"
    assert env["KICKOFF_SPEC_TICKET"] == "${{ inputs.ticket }}"
    assert env["KICKOFF_GIT_TOKEN"] == "${{ github.token }}"
    assert env["KICKOFF_URL"] == URL
    assert "--spec-url" in run_step["run"]
    assert "KICKOFF_RUN_SECRET" not in env  # it comes with the spec, never through the workflow


def test_it_installs_a_pinned_kickoff(workflow: dict[Any, Any]) -> None:
    installs = [step["run"] for step in steps(workflow) if "pip install" in step.get("run", "")]
    assert any('"kickoff-bot==1.2.3"' in line for line in installs)
    for step in steps(workflow):
        if "install" in step.get("run", ""):
            packages = re.findall(r'"([^"]+)"', step["run"])
            assert packages, step["run"]
            assert all(re.search(r"(@|==)\d", p) for p in packages), step["run"]


def test_bad_urls_and_versions_are_refused() -> None:
    with pytest.raises(WorkflowError):
        render_workflow("https://x.example.com/$(id)")
    with pytest.raises(WorkflowError):
        render_workflow(URL, "1.0; rm -rf /")


def test_write_workflow_refuses_to_clobber(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, URL, version="1.0.0")
    assert path == tmp_path / WORKFLOW_PATH
    assert write_workflow(tmp_path, URL, version="1.0.0") == path  # the same content: fine
    with pytest.raises(WorkflowError, match="--force"):
        write_workflow(tmp_path, URL, version="2.0.0")
    write_workflow(tmp_path, URL, version="2.0.0", force=True)
    assert '"kickoff-bot==2.0.0"' in path.read_text()


def test_the_init_workflow_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init-workflow", str(tmp_path), "--url", URL])
    assert result.exit_code == 0, result.output
    written = (tmp_path / WORKFLOW_PATH).read_text()
    assert f'"kickoff-bot=={__version__}"' in written
    assert yaml.safe_load(written)["permissions"] == {"contents": "write"}
    again = CliRunner().invoke(app, ["init-workflow", str(tmp_path), "--url", URL, "--version", "9.9.9"])
    assert again.exit_code == 1
