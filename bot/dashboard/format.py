"""Short human forms of durations, costs and states, shared by the HTML dashboard and `kickoff status`."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.dashboard.queries import RunRow


def duration(value: timedelta | None) -> str:
    """`42s`, `3m 05s`, `2h 07m`, `3d 4h`; an em dash for none."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def cost(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def clock(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def outcome(run: RunRow) -> str:
    """What a run produced: its pull request, or why it is where it is."""
    if run.pr_number is not None and run.state not in ("failed", "cancelled", "timed_out"):
        return f"PR #{run.pr_number}"
    return run.reason or ("PR #" + str(run.pr_number) if run.pr_number is not None else "—")


def state(value: str) -> str:
    return value.replace("_", " ")


def clip(value: str | None, limit: int = 120) -> str:
    if not value:
        return ""
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percent(value: float | None) -> str:
    """`75%`; an em dash for none."""
    return "—" if value is None else f"{value:.0%}"


def rounds(review_rounds: int, per_pr: float | None) -> str:
    """`3 (1.5 per PR)`; `0` without one."""
    return str(review_rounds) if not review_rounds or per_pr is None else f"{review_rounds} ({per_pr:.1f} per PR)"
