"""Every GitHub call Kickoff makes, and the App permission each one needs: where `app-manifest.yml` comes from.

Checked against GitHub's "Permissions required for GitHub Apps"
(https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps, mirrored as data in
octokit/app-permissions `generated/api.github.com.json`) and each endpoint's "Fine-grained access tokens" note in the
REST reference. `tests/setup/test_app_permissions.py` fails when a `GitHubAPI` verb has no entry here, when a verb
calls an endpoint its entry does not list, when a feature calls GitHub outside the verbs, when an entry needs a
permission the manifest does not grant, and when the manifest grants one that no entry needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

Access = Literal["read", "write"]
Need = tuple[str, Access]
"""(permission, level) as the manifest's `default_permissions` spells it."""
Endpoint = tuple[str, str]
"""(METHOD, path template) as GitHub's REST description spells it."""

LEVELS: Final[tuple[Access, ...]] = ("read", "write")

# Issue endpoints that Kickoff also uses on pull requests (a pull request is an issue): GitHub limits an App with
# `issues` but not `pull_requests` to real issues, so each needs both.
_ISSUES_AND_PULLS_WRITE: Final[tuple[Need, ...]] = (("issues", "write"), ("pull_requests", "write"))
_ISSUES_AND_PULLS_READ: Final[tuple[Need, ...]] = (("issues", "read"), ("pull_requests", "read"))

ENDPOINTS: Final[dict[Endpoint, tuple[Need, ...]]] = {
    # As the App (JWT) or unauthenticated: no installation permission is involved.
    ("GET", "/app"): (),  # JWT: the App's slug, for its bot login
    ("GET", "/repos/{owner}/{repo}/installation"): (),  # JWT ("You must use a JWT")
    ("POST", "/app/installations/{installation_id}/access_tokens"): (),  # JWT; the token gets at most the App's
    ("DELETE", "/installation/token"): (),  # the token revokes itself
    ("POST", "/app-manifests/{code}/conversions"): (),  # `kickoff setup`; the one-hour code is the credential
    ("GET", "/app/hook/deliveries"): (),  # JWT: `kickoff redeliver`
    ("POST", "/app/hook/deliveries/{delivery_id}/attempts"): (),  # JWT: `kickoff redeliver`
    ("GET", "/users/{username}"): (),  # public profile, any token: the bot user's id for its noreply address
    # Metadata (every App has it, read-only).
    ("GET", "/repos/{owner}/{repo}"): (("metadata", "read"),),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"): (("metadata", "read"),),  # the gate
    # Contents: the repo config from the default branch; merging the head of the queue.
    ("GET", "/repos/{owner}/{repo}/contents/{path}"): (("contents", "read"),),
    ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}"): (("contents", "read"),),  # files over 1 MB
    ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"): (("contents", "write"),),  # queue.merge: auto
    # Issues (and pull requests, which are issues): the trigger's text, tracking comments, reactions, labels.
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"): _ISSUES_AND_PULLS_READ,
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): _ISSUES_AND_PULLS_READ,
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): _ISSUES_AND_PULLS_WRITE,
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): _ISSUES_AND_PULLS_WRITE,
    ("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"): _ISSUES_AND_PULLS_WRITE,
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/reactions"): _ISSUES_AND_PULLS_WRITE,
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): _ISSUES_AND_PULLS_READ,
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): _ISSUES_AND_PULLS_WRITE,
    ("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"): _ISSUES_AND_PULLS_WRITE,
    # Pull requests: one per run, opened by the App; siblings closed; reviewers requested; the queue reads reviews.
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"): (("pull_requests", "read"),),
    ("POST", "/repos/{owner}/{repo}/pulls"): (("pull_requests", "write"),),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"): (("pull_requests", "write"),),
    ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers"): (("pull_requests", "write"),),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"): (("pull_requests", "read"),),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files"): (("pull_requests", "read"),),  # hold_overlaps
    ("POST", "/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions"): (("pull_requests", "write"),),
    ("GET", "/repos/{owner}/{repo}/pulls"): (("pull_requests", "read"),),  # adopt a PR GitHub says exists
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"): (("pull_requests", "read"),),  # follow-ups
    # Deleting the branch of a superseded or closed Kickoff pull request.
    ("DELETE", "/repos/{owner}/{repo}/git/refs/{ref}"): (("contents", "write"),),
    # "If making a request on behalf of a GitHub App you must also have permissions to write the contents of the
    # head repository." (REST reference, "Update a pull request branch")
    ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/update-branch"): (
        ("pull_requests", "write"),
        ("contents", "write"),
    ),
    # Checks: `review-queue` and `agent-run` (only Apps create check runs); the queue reads CI's.
    ("POST", "/repos/{owner}/{repo}/check-runs"): (("checks", "write"),),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"): (("checks", "write"),),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs"): (("checks", "read"),),
    # The review queue: the base branch's commit, and whether a head contains it.
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}"): (("contents", "read"),),
    ("GET", "/repos/{owner}/{repo}/compare/{basehead}"): (("contents", "read"),),
    # Commit statuses: CI that reports statuses rather than checks; Kickoff never writes one.
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status"): (("statuses", "read"),),
    # Actions: the `github-actions` runner dispatches the workflow Kickoff ships, follows it and cancels it.
    ("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"): (("actions", "write"),),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}"): (("actions", "read"),),
    ("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel"): (("actions", "write"),),
    ("GET", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"): (("actions", "read"),),  # older GHES
    # Git over HTTPS with a run token (`x-access-token`): the runner clones and pushes its one branch. Runs that
    # touch `.github/workflows/**` fail before pushing (protected_paths), so no `workflows` permission is needed.
    ("POST", "/{owner}/{repo}.git/git-upload-pack"): (("contents", "read"),),
    ("POST", "/{owner}/{repo}.git/git-receive-pack"): (("contents", "write"),),
}

VERBS: Final[dict[str, tuple[Endpoint, ...]]] = {
    # Every method of `bot.github.protocol.GitHubAPI` → the endpoints `GitHubGateway` calls for it.
    "for_repo": (),  # binds arguments; its verbs are the ones below
    "get_installation_for_repo": (("GET", "/repos/{owner}/{repo}/installation"),),
    "get_repository": (("GET", "/repos/{owner}/{repo}"),),
    "get_file": (
        ("GET", "/repos/{owner}/{repo}/contents/{path}"),
        ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}"),
    ),
    "comment": (("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),),
    "edit_comment": (("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),),
    "add_reaction_to_comment": (("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),),
    "add_labels": (("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),),
    "remove_label": (("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),),
    "get_collaborator_permission": (("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"),),
    "list_issue_comments": (("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),),
    "get_issue": (("GET", "/repos/{owner}/{repo}/issues/{issue_number}"),),
    "list_labels": (("GET", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),),
    "add_reaction_to_issue": (("POST", "/repos/{owner}/{repo}/issues/{issue_number}/reactions"),),
    "add_reaction_to_review_comment": (("POST", "/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions"),),
    "get_app": (("GET", "/app"),),
    "get_user": (("GET", "/users/{username}"),),
    "list_hook_deliveries": (("GET", "/app/hook/deliveries"),),
    "redeliver_hook_delivery": (("POST", "/app/hook/deliveries/{delivery_id}/attempts"),),
    "mint_run_token": (("POST", "/app/installations/{installation_id}/access_tokens"),),
    "revoke_token": (("DELETE", "/installation/token"),),
    "dispatch_workflow": (("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"),),
    "get_workflow_run": (("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}"),),
    "list_workflow_runs": (("GET", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"),),
    "cancel_workflow_run": (("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel"),),
    "open_pull_request": (("POST", "/repos/{owner}/{repo}/pulls"),),
    "get_pull_request": (("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"),),
    "find_pull_requests": (("GET", "/repos/{owner}/{repo}/pulls"),),
    "update_pull_request": (("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"),),
    "request_reviewers": (("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers"),),
    "create_check_run": (("POST", "/repos/{owner}/{repo}/check-runs"),),
    "update_check_run": (("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),),
    "list_check_runs": (("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),),
    "delete_branch": (("DELETE", "/repos/{owner}/{repo}/git/refs/{ref}"),),
    "list_review_comments": (("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),),
    "list_commit_statuses": (("GET", "/repos/{owner}/{repo}/commits/{ref}/status"),),
    "list_reviews": (("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),),
    "list_pull_request_files": (("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),),
    "get_branch_sha": (("GET", "/repos/{owner}/{repo}/git/ref/{ref}"),),
    "compare_commits": (("GET", "/repos/{owner}/{repo}/compare/{basehead}"),),
    "update_branch": (("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/update-branch"),),
    "merge_pull": (("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"),),
    # The escape hatches: whatever path they are given, which must itself be in ENDPOINTS.
}

EVENTS: Final[dict[str, Need]] = {
    # Webhook event → the permission an App needs to subscribe to it ("Webhook events and payloads",
    # https://docs.github.com/en/webhooks/webhook-events-and-payloads, each event's "Availability").
    "issues": ("issues", "read"),
    "issue_comment": ("issues", "read"),
    "pull_request": ("pull_requests", "read"),
    "pull_request_review": ("pull_requests", "read"),
    "pull_request_review_comment": ("pull_requests", "read"),
    "check_run": ("checks", "read"),
    "check_suite": ("checks", "read"),
    "status": ("statuses", "read"),
    "push": ("contents", "read"),
    "workflow_run": ("actions", "read"),
    "workflow_job": ("actions", "read"),
}


def at_least(held: str | None, needed: str) -> bool:
    """Whether access `held` ("read", "write" or None) covers `needed`."""
    if held not in LEVELS or needed not in LEVELS:
        return False
    return LEVELS.index(held) >= LEVELS.index(needed)


def required_permissions(needs: Iterable[Need] | None = None) -> dict[str, Access]:
    """The least `default_permissions` covering `needs` (default: every endpoint and event above)."""
    if needs is None:
        needs = [*(n for ns in ENDPOINTS.values() for n in ns), *EVENTS.values()]
    out: dict[str, Access] = {"metadata": "read"}  # GitHub grants it to every App that has any repository access
    for permission, level in needs:
        if not at_least(out.get(permission), level):
            out[permission] = level
    return dict(sorted(out.items()))


def missing(granted: Mapping[str, str], needs: Iterable[Need]) -> list[Need]:
    """The needs that `granted` (a manifest's `default_permissions`) does not cover."""
    return [(p, level) for p, level in needs if not at_least(granted.get(p), level)]
