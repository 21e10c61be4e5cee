"""The review-order queue: a pure model (`model`) and its coded check texts (`texts`)."""

from bot.queue.model import (
    Action,
    CheckWrite,
    DesiredCheck,
    Entry,
    Merge,
    Plan,
    Push,
    Snapshot,
    UpdateBranch,
    Verdict,
    band,
    blocker,
    desired_checks,
    diff,
    next_eligible_since,
    plan,
    review_order,
)
from bot.queue.texts import Reason, State

__all__ = [
    "Action",
    "CheckWrite",
    "DesiredCheck",
    "Entry",
    "Merge",
    "Plan",
    "Push",
    "Reason",
    "Snapshot",
    "State",
    "UpdateBranch",
    "Verdict",
    "band",
    "blocker",
    "desired_checks",
    "diff",
    "next_eligible_since",
    "plan",
    "review_order",
]
