"""The demo's Rich view: the story's phases, the runs, and the pull requests with their `review-queue` titles."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from bot.demo.harness import CI_CHECK, QUEUE_CHECK, CheckView
from bot.demo.story import Phase, Progress

_RUN_STYLE = {
    "queued": "dim", "waiting": "yellow", "starting": "cyan", "running": "cyan", "succeeded": "green",
    "no_changes": "yellow", "failed": "red", "cancelled": "dim", "timed_out": "red",
}
_PULL_STYLE = {"open": "green", "merged": "magenta", "closed": "red"}


def _mark(phase: Phase) -> RenderableType:
    if phase.status == "running":
        return Spinner("dots", style="cyan")
    return {"pending": Text("·", "dim"), "done": Text("✓", "green"), "failed": Text("✗", "bold red")}[phase.status]


def _check_text(check: CheckView | None) -> Text:
    if check is None:
        return Text("—", "dim")
    verdict = check.conclusion or check.status
    style = {"success": "green", "failure": "red", "neutral": "dim", "skipped": "dim", "cancelled": "dim"}.get(
        verdict, "yellow")
    return Text(verdict, style)


def render(progress: Progress, *, final: bool = False) -> RenderableType:
    """One frame: phases, runs and pull requests as they are now."""
    phases = Table.grid(padding=(0, 1))
    phases.add_column(width=1)
    phases.add_column()
    phases.add_column(justify="right", style="dim")
    for phase in progress.phases:
        if final and phase.status == "running":
            continue
        seconds = f"{phase.seconds:.1f}s" if phase.seconds is not None else ""
        line = Text(phase.title, "bold" if phase.status == "running" else "")
        if phase.note and phase.status in ("done", "failed"):
            line.append(f"\n{phase.note}", "red" if phase.status == "failed" else "dim")
        phases.add_row(_mark(phase), line, seconds)

    parts: list[RenderableType] = [phases]
    if progress.runs:
        runs = Table(title="Agent runs", title_justify="left", expand=False, box=None, padding=(0, 2))
        for column in ("run", "agent", "state", "pull request"):
            runs.add_column(column)
        for run in progress.runs:
            pull = progress.pull_of(run)
            runs.add_row(str(run.id), Text(run.agent), Text(run.state, _RUN_STYLE.get(run.state, "")),
                         Text(f"#{pull.number}" if pull else (run.reason or "")))
        parts.append(runs)
    if progress.pulls:
        pulls = Table(title="Review queue", title_justify="left", expand=False, box=None, padding=(0, 2))
        for column in ("PR", "state", CI_CHECK, QUEUE_CHECK, "title of the review-queue check"):
            pulls.add_column(column)
        for pull in progress.pulls:
            queue = pull.check(QUEUE_CHECK)
            state = pull.state + (" ✔ approved" if pull.approved and pull.state == "open" else "")
            pulls.add_row(f"#{pull.number}", Text(state, _PULL_STYLE.get(pull.state, "")),
                          _check_text(pull.check(CI_CHECK)), _check_text(queue), Text(queue.title if queue else ""))
        parts.append(pulls)
    elapsed = time.monotonic() - progress.started
    return Panel(Group(*parts), title="[bold]kickoff demo[/]", subtitle=f"{elapsed:.1f}s", subtitle_align="right",
                 expand=False)


def print_phase(console: Console, phase: Phase) -> None:
    """One line per finished phase, for output that is not a terminal (no live view there)."""
    mark = "✓" if phase.status == "done" else "✗"
    seconds = f" ({phase.seconds:.1f}s)" if phase.seconds is not None else ""
    console.print(f"{mark} {phase.title}{seconds}" + (f": {phase.note}" if phase.note else ""), markup=False,
                  highlight=False, soft_wrap=True)


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The closing lines: outcome, merged and superseded PRs, requests, and where to look next."""
    requests = summary.get("github_requests") or {}
    if summary["ok"]:
        merged = ", ".join(f"#{n}" for n in summary["merged"])
        superseded = ", ".join(f"#{n}" for n in summary["superseded"]) or "none"
        console.print(
            f"[bold green]Done[/] in {summary['duration_seconds']:.1f}s: {len(summary['runs'])} runs, "
            f"{len(summary['pull_requests'])} pull requests, merged {merged}, superseded {superseded}; "
            f"Kickoff made {requests.get('total', 0)} GitHub API requests, {requests.get('counted', 0)} of them "
            f"counted against the rate limit ({requests.get('not_modified', 0)} were 304 Not Modified).",
            highlight=False, soft_wrap=True)
    else:
        console.print(f"[bold red]The story did not complete[/] (phase `{summary['failed_phase']}`): "
                      f"{escape(str(summary['error']))}", highlight=False, soft_wrap=True)
    if summary["violations"]:
        console.print(f"[yellow]{len(summary['violations'])} fidelity violation(s)[/] — GitHub would have answered "
                      "differently: " + escape("; ".join(v["where"] for v in summary["violations"][:5])),
                      highlight=False, soft_wrap=True)
