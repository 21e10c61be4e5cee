"""The GitHub Actions workflow of the `github-actions` runner, and `kickoff init-workflow`, which writes it."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Final

from bot import __version__

WORKFLOW_PATH: Final = Path(".github/workflows/kickoff-agent.yml")
TEMPLATE: Final = "kickoff-agent.yml"


class WorkflowError(Exception):
    """The workflow cannot be written; the message says why and what to do."""


def template_text() -> str:
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")


def render_workflow(public_url: str, version: str = __version__) -> str:
    """The workflow for a Kickoff at `public_url`, installing `kickoff-bot==version`."""
    url = public_url.rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-:\[\]]+(/[A-Za-z0-9._~\-/]*)?", url):
        raise WorkflowError(f"{public_url!r} is not a plain http(s) URL (PUBLIC_URL, or --url)")
    if not re.fullmatch(r"[0-9A-Za-z.+!\-]+", version):
        raise WorkflowError(f"{version!r} is not a version")
    return template_text().replace("__KICKOFF_URL__", url).replace("__KICKOFF_VERSION__", version)


def write_workflow(repository: Path, public_url: str, *, version: str = __version__, force: bool = False) -> Path:
    """Write `.github/workflows/kickoff-agent.yml` under `repository`; its path."""
    path = repository / WORKFLOW_PATH
    text = render_workflow(public_url, version)
    if path.exists() and not force:
        if path.read_text(encoding="utf-8") == text:
            return path
        raise WorkflowError(f"{path} exists and differs; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
