"""The trigger kernel the handlers call: where a delivery happened (`Site`), the gate, the one reply helper, and
starting a trigger (`Triggers`)."""

from bot.routing import Site, site_of
from bot.triggers.replies import (
    find_own_comment,
    known_tasks,
    marker_key,
    post_reply,
    refusal,
    report_config_error,
    task_descriptions,
)
from bot.triggers.service import CONFIG_ERRORS_VERB, SAFE_POLICY, Triggers

__all__ = [
    "CONFIG_ERRORS_VERB",
    "SAFE_POLICY",
    "Site",
    "Triggers",
    "find_own_comment",
    "known_tasks",
    "marker_key",
    "post_reply",
    "refusal",
    "report_config_error",
    "site_of",
    "task_descriptions",
]
