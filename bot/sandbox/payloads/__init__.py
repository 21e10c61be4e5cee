"""JSON shapes of GitHub's resources, one small builder per resource, shared by REST responses and webhooks.

Modelled on the real payloads in `shared/github/webhooks/` and on the fields GitHub's REST description marks
required. Builders are pure: the engine resolves git facts (shas, mergeability) and passes them in.

One module per resource; this package gathers them so callers write `P.issue(...)`.
"""

from bot.sandbox.payloads.checks import check_run, check_suite, combined_state, commit_status, suite_status
from bot.sandbox.payloads.common import Json, Urls, repository, user
from bot.sandbox.payloads.identity import app, installation
from bot.sandbox.payloads.issues import REACTION_CONTENTS, comment, issue, label, reaction, reaction_rollup
from bot.sandbox.payloads.pulls import PullFacts, pull_ref, pull_request, pull_request_simple, review, review_comment
from bot.sandbox.payloads.repos import (
    base64_lines,
    branch,
    commit,
    content_entry,
    content_links,
    diff_entry,
    git_ref,
    short_branch,
    simple_commit,
)
from bot.sandbox.payloads.webhooks import delivery, delivery_item, push_commit

__all__ = [
    "REACTION_CONTENTS",
    "Json",
    "PullFacts",
    "Urls",
    "app",
    "base64_lines",
    "branch",
    "check_run",
    "check_suite",
    "combined_state",
    "comment",
    "commit",
    "commit_status",
    "content_entry",
    "content_links",
    "delivery",
    "delivery_item",
    "diff_entry",
    "git_ref",
    "installation",
    "issue",
    "label",
    "pull_ref",
    "pull_request",
    "pull_request_simple",
    "push_commit",
    "reaction",
    "reaction_rollup",
    "repository",
    "review",
    "review_comment",
    "short_branch",
    "simple_commit",
    "suite_status",
    "user",
]
