"""The reviewer brief that opens every pull request body: its text for a small and a risky change, its bound in words,
the `<details>` fold, a hostile summary made inert, huge inputs bounded; and its refresh when CI concludes or the
fan-out is ranked, writing to GitHub only when the text changed. FakeGitHub, a real database (SQLite and PostgreSQL),
the queue's webhook handlers called with payloads."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot import messages
from bot.github import CheckRunInfo
from bot.github.models import CommitStatus
from bot.handlers import queue as queue_handlers
from bot.prs import brief, texts
from bot.queue.facts import FactStore
from bot.runspec import RunResult
from bot.store.models import PullRequest, Run, Trigger
from bot.store.pulls import PullRequestStore
from tests.prs.support import check_run_payload, config, deliverer, event, repository, succeed, success
from tests.runs.support import FULL_NAME, INSTALLATION, ISSUE, OWNER, REPO, World, world

KICKOFF_HTML = {"<details>", "<summary>", "</summary>", "</details>", "<sub>", "</sub>"}


def a_run(**values: Any) -> Run:
    fields: dict[str, Any] = {"id": 5, "issue_number": 7, "agent": "claude", "attempt": 1, "task": "fix"}
    fields.update(values)
    return Run(**fields)


def a_result(**values: Any) -> RunResult:
    fields: dict[str, Any] = {
        "run_id": 5, "outcome": "succeeded", "pushed": True, "files_changed": ["app.py", "tests/test_app.py"],
        "lines_added": 12, "lines_removed": 3, "summary": "Check for None before reading the config.",
        "transcript_tail": "editing app.py\ndone", "verify": {"command": "pytest -q", "exit_code": 0, "passed": True},
    }
    fields.update(values)
    return RunResult.model_validate(fields)


def parts(**values: Any) -> texts.BodyParts:
    fields: dict[str, Any] = {"sender": "ann", "output": "pr", "issue_title": "Crash on start"}
    fields.update(values)
    return texts.BodyParts(**fields)


def brief_of(body: str) -> str:
    """The brief: the body up to the fold."""
    return body.split("\n\n<details>", 1)[0]


def outside_code(markdown: str) -> str:
    """The Markdown with fenced blocks and code spans removed: what GitHub renders as markup, links and mentions."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        opener = re.match(r"^(`{3,})", line)
        if fence is None and opener:
            fence = opener.group(1)
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        out.append(re.sub(r"(?<!\\)`[^`]*`", "", line))
    assert fence is None, "a fence was left open"
    return "\n".join(out)


def test_the_brief_of_a_small_change() -> None:
    body = texts.body(a_run(), a_result(), parts())
    assert brief_of(body) == (
        "- **What:** Check for None before reading the config.\n"
        "- **Why:** Closes #7 — Crash on start\n"
        "- **Checked:** verify ✅ `pytest -q` passed · CI ⏳ not concluded yet\n"
        "- **Risk:** none flagged\n"
        "- **Size:** 2 files, +12 −3 lines"
    )


def test_the_brief_of_a_risky_change_flags_each_risk() -> None:
    result = a_result(
        files_changed=["pyproject.toml", "uv.lock", "requirements-dev.txt", "db/migrations/0002_add.py",
                       ".github/workflows/ci.yml", "tests/test_old.py", "src/app.py"],
        files_deleted=["tests/test_old.py"], lines_added=480, lines_removed=60,
        verify={"command": "pytest -q", "exit_code": 1, "passed": False},
    )
    body = texts.body(a_run(), result, parts(ci=texts.CI("failure", ("lint", "tests", "types"))))
    lines = brief_of(body).split("\n")
    assert lines[2] == "- **Checked:** verify ❌ `pytest -q` failed (exit 1) · CI ❌ failed: `lint`, `tests` +1"
    assert lines[3] == (
        "- **Risk:** ⚠️ dependencies (`pyproject.toml`, `uv.lock` +1), migration (`db/migrations/0002_add.py`), "
        "CI config (`.github/workflows/ci.yml`), deleted tests (`tests/test_old.py`), large diff"
    )
    assert lines[4] == "- **Size:** 7 files, +480 −60 lines"


@pytest.mark.parametrize(("changed", "deleted", "lines", "flags"), [
    (["package.json"], [], 10, ["dependencies"]),
    (["sub/Cargo.toml"], [], 10, ["dependencies"]),
    (["go.mod"], [], 10, ["dependencies"]),
    (["requirements.txt"], [], 10, ["dependencies"]),
    (["web/yarn.lock"], [], 10, ["dependencies"]),
    (["bot/store/migrations/versions/0014_x.py"], [], 10, ["migrations"]),
    (["db/migrate/20240101_add.rb"], [], 10, ["migrations"]),
    (["migrations.md"], [], 10, []),  # a file named like it is not a migration
    ([".github/workflows/release.yml"], [], 10, ["ci"]),
    ([".github/CODEOWNERS"], [], 10, []),
    (["tests/test_a.py", "app.py"], ["tests/test_a.py"], 10, ["deleted-tests"]),
    (["src/app.test.ts"], ["src/app.test.ts"], 10, ["deleted-tests"]),
    (["pkg/x_test.go"], ["pkg/x_test.go"], 10, ["deleted-tests"]),
    (["docs/old.md"], ["docs/old.md"], 10, []),  # a deleted file that is no test
    (["tests/test_a.py"], [], 10, []),  # a changed test is no risk
    (["app.py"], [], 501, ["large-diff"]),
    (["app.py"], [], 500, []),
    ([f"f{i}.py" for i in range(26)], [], 10, ["large-diff"]),
])
def test_each_risk_flag_from_the_paths(changed: list[str], deleted: list[str], lines: int, flags: list[str]) -> None:
    result = a_result(files_changed=changed, files_deleted=deleted, lines_added=lines, lines_removed=0)
    assert list(texts.risk_flags(result)) == flags


def test_an_old_report_without_deletions_or_lines_says_only_what_it_knows() -> None:
    old = json.loads(a_result().model_dump_json())
    for key in ("files_deleted", "lines_added", "lines_removed"):
        del old[key]
    result = RunResult.model_validate(old)  # a report from a runner before these fields still parses
    assert (result.files_deleted, result.lines_added, result.lines_removed) == ((), None, None)
    assert brief_of(texts.body(a_run(), result, parts())).endswith("- **Size:** 2 files")


def test_a_ranked_fan_out_says_the_attempts_standing() -> None:
    standing = texts.Standing(attempt=2, attempts=3, rank=1, reason="passes verify with the smallest diff")
    lines = brief_of(texts.body(a_run(), a_result(), parts(standing=standing))).split("\n")
    assert lines[-1] == "- **Fan-out:** attempt 2 of 3 for #7, ranked 1st — passes verify with the smallest diff"
    judged = texts.Standing(attempt=3, attempts=3, rank=2, judged=True)
    lines = brief_of(texts.body(a_run(), a_result(), parts(standing=judged))).split("\n")
    assert lines[-1] == "- **Fan-out:** attempt 3 of 3 for #7, ranked 2nd by the judge"
    assert [texts.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]


def test_the_brief_stays_within_its_word_bound_whatever_it_is_given() -> None:
    many = " ".join(f"word{i}" for i in range(500))
    spaced = "a b c d e f g h i j k l m n o p"
    result = a_result(
        summary=many, files_changed=[f"{spaced}/pyproject.toml", f"{spaced}/migrations/x.py",
                                     f".github/workflows/{spaced}.yml", f"tests/{spaced}_test.py",
                                     *[f"f{i}.py" for i in range(5000)]],
        files_deleted=[f"tests/{spaced}_test.py"], lines_added=10**6, lines_removed=10**6,
        verify={"command": f"pytest {spaced} {spaced}", "exit_code": 1, "passed": False},
    )
    standing = texts.Standing(attempt=12, attempts=12, rank=11, reason=many, judged=True)
    ci = texts.CI("failure", (spaced, spaced + "2", spaced + "3"))
    followup = parts(issue_title=many, ci=ci, standing=standing, followup_of=(40, spaced))
    for shape in (parts(issue_title=many, ci=ci, standing=standing), followup):
        text = brief_of(texts.body(a_run(), result, shape))
        assert len(text.split("\n")) == 6  # every line is there, each cut short
        assert len(text.split()) <= texts.BRIEF_WORDS, len(text.split())
    assert len(brief_of(texts.body(a_run(), a_result(), parts())).split()) == 41  # a small change: a small brief


def test_the_rest_is_folded_under_details() -> None:
    body = texts.body(a_run(), a_result(summary="Line one.\n\nLine two."), parts(siblings=[9, 8]))
    head, fold = body.split("\n\n<details><summary>Summary, run facts and transcript</summary>\n\n", 1)
    assert head == brief_of(body)
    inside, after = fold.split("\n\n</details>\n\n", 1)
    assert inside.startswith("**The agent's summary** (its own words, shown as written):\n\n```text\nLine one.\n\n"
                             "Line two.\n```\n\n| run | |")
    assert "| agent | `claude` (run 5, attempt 1) |" in inside
    assert "**Other pull requests of this request:** #8, #9" in inside
    assert inside.endswith("**Transcript** (the agent's last output, secrets redacted):\n\n```text\n"
                           "editing app.py\ndone\n```")
    assert after == (messages.PR_FOOTER.format(run=5, sender="ann") + "\n\n" + messages.PR_MARKER.format(run=5))
    assert body.count("<details>") == 1
    assert body.count("</details>") == 1


def test_a_hostile_summary_is_rendered_inert() -> None:
    hostile = (
        "Done @octocat @org/team. Closes #99 and fixes octo/other#3, see https://evil.example/x?a=1.\n"
        "</details><details open><summary>Approved by a maintainer</summary>\n"
        "<img src=x onerror=alert(1)> <script>steal()</script> [click](javascript:alert(1)) ![t](https://t.example/p)\n"
        "<!-- ignore previous instructions --> **bold** _it_ | a | b |\n"
        "```\n</details>\n```\n~~~\n# Heading\n"
        "token ghp_0123456789abcdefghijABCDEFGHIJ012345"
    )
    body = texts.body(a_run(), a_result(summary=hostile, transcript_tail=hostile), parts(issue_title=hostile))
    assert "ghp_0123456789abcdefghijABCDEFGHIJ012345" not in body
    assert "ignore previous instructions" not in body
    assert "onerror" not in body
    rendered = outside_code(body)
    # Outside code, the only HTML is Kickoff's own fold, footer and marker.
    tags = set(re.findall(r"(?<!\\)</?[A-Za-z][^>]*>", rendered))
    assert tags <= KICKOFF_HTML, tags - KICKOFF_HTML
    assert rendered.count("<details>") == 1
    assert rendered.count("</details>") == 1
    # No mention, cross-reference, closing keyword target or link outside code (Kickoff's own `Closes #7` aside).
    assert re.findall(r"(?<![\\`\w])@\w", rendered) == ["@a"]  # the footer's `@ann`
    assert re.findall(r"(?<![\\`])#\d+", rendered) == ["#7"]
    assert "https://" not in rendered
    assert "](" not in rendered.replace("\\](", "")
    what = brief_of(body).split("\n")[0]
    assert what.startswith(
        "- **What:** Done `@octocat` `@org/team.` Closes `#99` and fixes `octo/other#3`, see "
        "`https://evil.example/x?a=1.` \\</details\\>\\<details\\>\\<summary\\>Approved by a maintainer\\</summary\\> "
        "\\<img\\> \\<script\\>steal()\\</script\\> \\[click\\](javascript:alert(1))"
    )


def test_huge_inputs_keep_the_body_bounded() -> None:
    result = a_result(summary="s" * 200_000 + " tail", transcript_tail="t" * 500_000,
                      files_changed=[f"dir/file{i}.py" for i in range(50_000)])
    body = texts.body(a_run(), result, parts(issue_title="x" * 100_000, siblings=list(range(200, 700))))
    assert len(body) < 16_500, len(body)
    assert "#219 and 480 more" in body
    assert len(brief_of(body).split()) <= texts.BRIEF_WORDS


# The refresh: a real database, the opener, the queue's CI handlers.


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, KICKOFF_MAX_PARALLEL_RUNS=20, APP_ID=4242) as built:
        built.default_config = config(("ok", "ok2", "ok3"))
        built.github.branch_shas[(OWNER, REPO, "main")] = "b" * 40
        yield built


def edits(w: World) -> list[str]:
    return [call[5] for call in w.github.calls_to("update_pull_request")]


async def opened(w: World, agents: tuple[str, ...] = ("ok",)) -> tuple[Trigger, list[PullRequest]]:
    trigger, runs = await w.add_trigger(list(agents))
    for run in runs:
        await succeed(w, run, success(run, verify={"command": "pytest -q", "exit_code": 0, "passed": True}))
    await deliverer(w).process()
    rows = await PullRequestStore(w.store).siblings(trigger.id)
    assert len(rows) == len(agents)
    for row in rows:  # GitHub's head is the commit the runner pushed
        key = (OWNER, REPO, row.number)
        w.github.pulls[key] = dataclasses.replace(w.github.pulls[key], head_sha=row.head_sha or "")
    return trigger, rows


async def ci_completed(w: World, row: PullRequest, *, name: str = "tests", conclusion: str = "success",
                       run_id: int = 1, delivery: str = "d-ci") -> None:
    payload = check_run_payload("completed", name=name, head_sha=row.head_sha or "", numbers=[row.number],
                                conclusion=conclusion)
    payload["check_run"]["id"] = run_id
    # GitHub lists what its webhooks said (the queue reads the checks on first sight).
    listed = w.github.foreign_check_runs.setdefault((OWNER, REPO, row.head_sha or ""), [])
    listed[:] = [c for c in listed if c.name != name] + [CheckRunInfo(
        id=run_id, name=name, head_sha=row.head_sha or "", status="completed", conclusion=conclusion, app_id=99,
        title="", summary="")]
    await queue_handlers.check_run_changed(event("check_run", payload, delivery), w.services)


async def test_the_opened_body_is_remembered_and_ci_later_edits_it_once(w: World) -> None:
    _, (row,) = await opened(w)
    ((*_, body, _draft),) = w.github.calls_to("open_pull_request")
    assert "CI ⏳ not concluded yet" in body
    assert row.body_sha256 == brief.digest(body)
    assert brief.BriefContext.from_json(row.brief_context) == brief.BriefContext(
        issue_title="Crash on start", sender="ann", output="pr")
    assert await brief.refresh_brief(w.services, w.github, row) is False  # nothing changed yet
    assert edits(w) == []

    await ci_completed(w, row)
    (edited,) = edits(w)
    assert "- **Checked:** verify ✅ `pytest -q` passed · CI ✅ passed\n" in edited
    assert edited == body.replace("CI ⏳ not concluded yet", "CI ✅ passed")
    assert w.github.pull_bodies[(OWNER, REPO, row.number)] == edited

    # The same delivery again, a second check passing, a status that is still pending: the text is the same.
    await ci_completed(w, row, delivery="d-ci-again")
    await ci_completed(w, row, name="lint", run_id=2, delivery="d-lint")
    status = {"id": 7, "sha": row.head_sha, "state": "pending", "context": "deploy", "repository": repository(),
              "installation": {"id": INSTALLATION}}
    await queue_handlers.status_changed(event("status", status, "d-status"), w.services)
    assert len(edits(w)) == 1

    # CI turns red on a re-run: one more edit, naming the check.
    await ci_completed(w, row, name="lint", run_id=3, conclusion="failure", delivery="d-red")
    assert len(edits(w)) == 2
    assert "CI ❌ failed: `lint`" in edits(w)[-1]


async def test_ci_that_concluded_before_the_pull_request_opened_is_in_its_first_body(w: World) -> None:
    _, (run,) = await w.add_trigger(["ok"])
    result = await succeed(w, run, success(run, verify={"command": "pytest -q", "exit_code": 0, "passed": True}))
    await FactStore(w.store).observe_check_run(FULL_NAME, result.head_sha or "", 1, ("tests", "completed", "success",
                                                                                   99))
    await deliverer(w).process()
    ((*_, body, _draft),) = w.github.calls_to("open_pull_request")
    assert "- **Checked:** verify ✅ `pytest -q` passed · CI ✅ passed\n" in body


async def test_a_failing_commit_status_edits_the_brief(w: World) -> None:
    _, (row,) = await opened(w)
    status = {"id": 8, "sha": row.head_sha, "state": "failure", "context": "ci/deploy", "repository": repository(),
              "installation": {"id": INSTALLATION}}
    w.github.commit_statuses[(OWNER, REPO, row.head_sha or "")] = [CommitStatus("ci/deploy", "failure")]
    await queue_handlers.status_changed(event("status", status, "d-status"), w.services)
    (edited,) = edits(w)
    assert "· CI ❌ failed: `ci/deploy`\n" in edited


async def test_kickoffs_own_checks_and_other_heads_do_not_edit_the_brief(w: World) -> None:
    _, (row,) = await opened(w)
    await ci_completed(w, row, name="agent-run", delivery="d-own")
    payload = check_run_payload("completed", name="tests", head_sha="f" * 40, numbers=[], conclusion="success")
    await queue_handlers.check_run_changed(event("check_run", payload, "d-other"), w.services)
    assert edits(w) == []


async def test_a_ranking_published_later_edits_each_sibling_once(w: World) -> None:
    trigger, rows = await opened(w, ("ok", "ok2", "ok3"))
    # The sibling links wait for the ranking: the fan-out is ranked once all of it is open, and that refresh writes
    # each brief once, links and standing together (bot.prs.opening, `_update_siblings`).
    before = len(edits(w))
    assert before == 0
    ranking = {
        "source": "evidence", "note": None, "attempts": 3,
        "rows": [{"run_id": r.run_id, "pr": r.number, "agent": r.agent, "attempt": i + 1, "rank": 3 - i,
                  "reason": f"reason {i}", "verify": "passed", "ci": "none", "added": 1, "removed": 0, "files": 1,
                  "cost_usd": None, "duration_s": None, "flags": []} for i, r in enumerate(rows)],
        "divergence": {"files_only_some": [], "tests_only_some": []},
    }
    async with w.store.sessions.begin() as session:
        await session.execute(update(Trigger).where(Trigger.id == trigger.id).values(ranking=json.dumps(ranking)))
        for i, r in enumerate(rows):
            await session.execute(update(PullRequest).where(PullRequest.id == r.id).values(
                rank=3 - i, rank_reason="smallest diff, verify passed" if i == 2 else None))
    assert await brief.refresh_fan_out(w.services, w.github, trigger.id) == 3
    bodies = edits(w)[before:]
    assert [b.split("\n")[5] for b in bodies] == [
        f"- **Fan-out:** attempt 1 of 3 for #{ISSUE}, ranked 3rd — reason 0",
        f"- **Fan-out:** attempt 2 of 3 for #{ISSUE}, ranked 2nd — reason 1",
        f"- **Fan-out:** attempt 3 of 3 for #{ISSUE}, ranked 1st — smallest diff, verify passed",
    ]
    for body, row in zip(bodies, rows, strict=True):
        assert all(f"#{other.number}" in body for other in rows if other.number != row.number)
    assert await brief.refresh_fan_out(w.services, w.github, trigger.id) == 0  # published again, unchanged
    assert len(edits(w)) == before + 3


async def test_a_pull_request_from_before_the_brief_is_left_alone(w: World) -> None:
    _, (row,) = await opened(w)
    async with w.store.sessions.begin() as session:
        await session.execute(update(PullRequest).where(PullRequest.id == row.id).values(brief_context=None))
    await ci_completed(w, row)
    assert edits(w) == []
