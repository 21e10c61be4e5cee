"""The dashboard in a real browser: Debian's headless Chromium against a real Kickoff server on a seeded database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.store.models import RunState
from bot.store.runs import RunStore
from tests.dashboard.conftest import TOKEN, on_store
from tests.dashboard.scenario import NOT_IN_ORDER, QUEUE_ORDER, REPO, Seeded
from tests.support import ServerThread, make_settings

pytestmark = pytest.mark.slow

Serve = Callable[..., ServerThread]


def _queue_rows(page: Any) -> list[tuple[str, str]]:
    rows = page.locator(f'table.queue[data-repo="{REPO}"] tbody tr[data-pr]')
    return [
        (rows.nth(i).locator("td").nth(0).inner_text().strip(), rows.nth(i).get_attribute("data-pr"))
        for i in range(rows.count())
    ]


def test_queue_in_review_order_and_a_run_changes_without_reload(
    database_url: str, seeded: Seeded, serve: Serve, browser: Any
) -> None:
    server = serve(make_settings(database_url))
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.title() == "Kickoff dashboard"
    assert page.locator("table.queue caption").first.inner_text().startswith("Review queue of")
    assert _queue_rows(page) == [
        *[(str(i), str(n)) for i, n in enumerate(QUEUE_ORDER, 1)],
        *[("—", str(n)) for n in NOT_IN_ORDER],
    ]
    head = page.locator(f'table.queue[data-repo="{REPO}"] tr[data-pr="23"]')
    assert head.locator("td").nth(3).inner_text() == "Next for review"  # the review-queue check's title
    assert page.locator('table.queue tr[data-pr="22"] td').nth(5).inner_text() == "high"
    assert page.locator("table.queue thead th").all_inner_texts()[:7] == [
        "Position", "Pull request", "Title", "Agent", "review-queue", "Waiting", "Priority"
    ]

    run = page.locator(f"#run-{seeded.running_run}")
    assert run.get_attribute("data-state") == "running"
    assert run.locator("td.state").inner_text() == "running"
    assert "agent running" in run.inner_text()
    dead = page.locator(f'#deliveries tr[data-delivery="{seeded.dead_delivery}"]')
    assert "dead" in dead.inner_text()
    assert "502 Bad Gateway" in dead.inner_text()

    page.evaluate("window.kickoffMarker = 'same page'")  # gone if the page were reloaded

    async def finish(store: Any) -> None:
        runs = RunStore(store)
        assert await runs.move(seeded.running_run, RunState.SUCCEEDED, values={"pr_number": 26, "cost_usd": 0.55})

    on_store(database_url, finish)
    page.wait_for_selector(f'#run-{seeded.running_run}[data-state="succeeded"]', timeout=15_000)
    run = page.locator(f"#run-{seeded.running_run}")
    assert run.locator("td.state").inner_text() == "succeeded"
    assert "PR #26" in run.inner_text()
    assert "$0.55" in run.inner_text()
    assert page.evaluate("window.kickoffMarker") == "same page"


def test_token_gate_login_form_cookie_and_bearer(sqlite_url: str, serve: Serve, browser: Any) -> None:
    server = serve(make_settings(sqlite_url, DASHBOARD_TOKEN=TOKEN))
    page = browser.new_page()
    response = page.goto(server.url + "/")
    assert response is not None
    assert response.status == 401
    assert page.locator("#live").count() == 0
    assert page.locator("label[for=token]").inner_text().startswith("Dashboard token")

    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    page.wait_for_selector("[role=alert]")
    assert page.inner_text("[role=alert]") == "That token is not right."
    assert page.context.cookies() == []

    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#live")
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("kickoff_dashboard", True, "Strict")
    assert TOKEN not in cookie["value"]
    # The cookie also opens the JSON twins and the live fragment, from the page's own origin.
    assert page.evaluate("fetch('/api/queue').then(r => r.status)") == 200
    assert page.evaluate("fetch('/dashboard/live').then(r => r.status)") == 200
    page.click("text=Log out")
    page.wait_for_selector("#token")
    assert page.context.cookies() == []

    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/deliveries").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/", headers=bearer).status_code == 200
        for path in ("/api/runs", "/api/queue", "/api/deliveries?status=dead", "/dashboard/live"):
            assert client.get(path, headers=bearer).status_code == 200, path
        forged = client.get("/api/runs", headers={"Cookie": f"kickoff_dashboard={TOKEN}"})
        assert forged.status_code == 401  # the cookie holds an HMAC of the token, not the token


def test_token_is_mandatory_off_localhost(sqlite_url: str, serve: Serve, browser: Any) -> None:
    server = serve(make_settings(sqlite_url, PUBLIC_URL="https://kickoff.example.com"))
    page = browser.new_page()
    response = page.goto(server.url + "/")
    assert response is not None
    assert response.status == 401
    assert "DASHBOARD_TOKEN" in page.inner_text("main")
    assert page.locator("#token").count() == 0
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        for path in ("/api/runs", "/api/queue", "/api/deliveries", "/dashboard/live"):
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert "DASHBOARD_TOKEN" in answer.json()["detail"]
        assert client.post("/dashboard/login", content=b"token=x").status_code == 401
        # The bot itself goes on: health and metrics answer.
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_token_off_localhost_serves_with_the_token(sqlite_url: str, serve: Serve) -> None:
    server = serve(make_settings(sqlite_url, PUBLIC_URL="https://kickoff.example.com", DASHBOARD_TOKEN=TOKEN))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/").status_code == 401
        login = client.post("/dashboard/login", content=f"token={TOKEN}".encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" in cookie
        page = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200
        assert "script-src 'nonce-" in page.headers["content-security-policy"]


def test_the_outcome_chart_and_table_render(history: str, serve: Serve, browser: Any) -> None:
    server = serve(make_settings(history))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    figure = page.locator('figure.outcome-figure[data-repo="octo/shop"]')
    assert figure.locator("svg title").first.text_content().startswith("Pull requests by outcome")
    # Drawn, not only written: each bar has its share of the 300-pixel track on screen.
    codex = figure.locator('g.outcome-bar[data-agent="codex"]')
    widths = {kind: codex.locator(f'rect[data-kind="{kind}"]').bounding_box()["width"] for kind in ("merged", "closed")}
    assert widths == {"merged": 150, "closed": 150}
    assert codex.locator("rect.cost-bar").bounding_box()["width"] == 120
    assert codex.locator("text.rate").text_content() == "50% accepted"
    merged = codex.locator('rect[data-kind="merged"]').evaluate("e => getComputedStyle(e).fill")
    closed = codex.locator('rect[data-kind="closed"]').evaluate("e => getComputedStyle(e).fill")
    assert merged != closed
    rows = page.locator('table.outcomes[data-repo="octo/shop"] tbody tr')
    assert rows.locator("th").all_inner_texts() == ["aider", "claude", "codex"]
    assert rows.nth(1).locator("td").all_inner_texts() == [
        "6", "4", "3", "0", "1", "100%", "5h 00m", "$3.00", "$1.00", "3 (0.8 per PR)"
    ]
