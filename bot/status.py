"""`kickoff status`: the dashboard's picture in the terminal, as Rich tables, read from DATABASE_URL."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.dashboard import format as fmt
from bot.dashboard.outcomes import Outcomes
from bot.dashboard.queries import Overview, RepositoryView, status_label
from bot.store.models import DeliveryStatus

_STATE_STYLES = {
    "succeeded": "green",
    "no_changes": "dim",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "dim",
    "running": "blue",
    "starting": "blue",
    "queued": "yellow",
    "waiting": "yellow",
    "retrying": "yellow",
    "dead": "red",
}


def render(view: Overview, outcomes: Outcomes | None = None) -> RenderableType:
    parts: list[RenderableType] = [_summary(view), _installations(view)]
    for repo in view.repositories:
        parts.extend(_queues(repo))
        parts.append(_runs(repo))
    if outcomes is not None:
        parts.append(_outcomes(outcomes))
    parts.append(_deliveries(view))
    return Group(*parts)


def print_status(view: Overview, console: Console | None = None, outcomes: Outcomes | None = None) -> None:
    (console or Console()).print(render(view, outcomes))


def _summary(view: Overview) -> Text:
    counts = ", ".join(f"{view.delivery_counts.get(s, 0)} {status_label(s)}" for s in DeliveryStatus.ALL)
    return Text(
        f"Kickoff at {fmt.clock(view.now)}: {len(view.installations)} installation(s), "
        f"{len(view.repositories)} repositor{'y' if len(view.repositories) == 1 else 'ies'}; deliveries: {counts}"
    )


def _installations(view: Overview) -> RenderableType:
    if not view.installations:
        return Text("Installations: none recorded yet.")
    table = Table(title="Installations", title_justify="left")
    for column in ("Account", "Type", "Installation", "Repositories", "State"):
        table.add_column(column)
    for inst in view.installations:
        table.add_row(
            inst.account, inst.account_type, str(inst.id), ", ".join(inst.repositories) or "—",
            "suspended" if inst.suspended else "active",
        )
    return table


def _queues(repo: RepositoryView) -> list[Table]:
    bases = sorted({row.base for row in repo.queue}) or [""]
    tables = []
    for base in bases:
        into = f" into {base}" if base else ""
        table = Table(title=f"Review queue of {repo.name}{into}", title_justify="left")
        for column in ("Pos", "PR", "Title", "Agent", "review-queue", "Waiting", "Priority"):
            table.add_column(column, justify="right" if column in ("Pos", "Waiting") else "left")
        rows = [row for row in repo.queue if row.base == base]
        for row in rows:
            title = row.title + (" (draft)" if row.draft else "")
            priority = row.priority + (" (on hold)" if row.held else "")
            table.add_row(
                "—" if row.position is None else str(row.position), f"#{row.number}", fmt.clip(title, 60),
                row.agent or "—", fmt.clip(row.check_title, 60) or "—", fmt.duration(row.waiting), priority,
            )
        if not rows:
            table.add_row("", "", "No open pull request awaits review.", "", "", "", "")
        tables.append(table)
    return tables


def _runs(repo: RepositoryView) -> Table:
    table = Table(title=f"Runs in {repo.name}", title_justify="left")
    for column in ("Run", "Issue", "Task", "Agent", "State", "Runner", "Duration", "Cost", "PR or reason", "Progress"):
        table.add_column(column, justify="right" if column in ("Run", "Duration", "Cost") else "left")
    for run in repo.runs:
        agent = run.agent + (f" (attempt {run.attempt})" if run.attempt > 1 else "")
        progress = (run.progress or "—") if run.state in ("starting", "running") else ""
        table.add_row(
            str(run.id), f"#{run.issue_number}", run.task, agent,
            Text(fmt.state(run.state), style=_STATE_STYLES.get(run.state, "")), run.runner or "—",
            fmt.duration(run.duration), fmt.cost(run.cost_usd), fmt.clip(fmt.outcome(run), 60), progress,
        )
    if not repo.runs:
        table.add_row("", "", "", "", "No run yet.", "", "", "", "", "")
    return table


def _outcomes(found: Outcomes) -> RenderableType:
    if not found.rows:
        return Text(f"Outcomes: no run finished in the last {found.label}.")
    table = Table(title=f"Outcomes over the last {found.label}", title_justify="left")
    columns = ("Repository", "Agent", "Runs", "PRs", "Merged", "Closed", "Open", "Accepted", "Median to merge",
               "Cost", "Per merged PR", "Review rounds")
    for column in columns:
        table.add_column(column, justify="left" if column in ("Repository", "Agent") else "right")
    for row in found.rows:
        table.add_row(
            row.repository, row.agent, str(row.runs), str(row.opened), str(row.merged), str(row.closed),
            str(row.open), fmt.percent(row.acceptance), fmt.duration(row.merge_median), fmt.cost(row.cost_usd),
            fmt.cost(row.cost_per_merged), str(row.review_rounds),
        )
    return table


def _deliveries(view: Overview) -> RenderableType:
    if not view.deliveries:
        return Text("Failed and dead deliveries: none, every delivery was handled.")
    table = Table(title="Failed and dead deliveries", title_justify="left")
    for column in ("Delivery", "Event", "Repository", "Status", "Attempts", "Received", "Last error"):
        table.add_column(column, justify="right" if column == "Attempts" else "left")
    for d in view.deliveries:
        table.add_row(
            d.id, d.key, d.repository or "—", Text(d.status, style=_STATE_STYLES.get(d.status, "")),
            str(d.attempts), fmt.clock(d.received_at), fmt.clip(d.last_error, 80),
        )
    return table
