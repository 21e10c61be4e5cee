"""`GET /metrics` after a known scenario: signed deliveries through the ingress, a failing handler, runs moving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.queue.facts import Drift
from bot.routing import Event, Router
from bot.services import Services
from bot.store.models import RunState
from bot.store.runs import RunStore
from bot.web import create_app
from tests.dashboard.conftest import on_store
from tests.dashboard.scenario import Seeded
from tests.deliveries import headers
from tests.support import WEBHOOK_SECRET, ServerThread, make_settings


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample name and labels → value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def send(client: httpx.Client, event: str, payload: dict[str, Any], delivery_id: str) -> int:
    body = json.dumps(payload).encode()
    return client.post("/api/github/webhooks", content=body, headers=headers(WEBHOOK_SECRET, event, body,
                                                                              delivery_id)).status_code


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_after_deliveries_failures_and_runs(database_url: str, seeded: Seeded) -> None:
    router = Router()

    @router.on("issues")
    async def fine(event: Event, services: Services) -> None:
        return None

    @router.on("issue_comment")
    async def broken(event: Event, services: Services) -> None:
        raise RuntimeError("the handler broke")

    settings = make_settings(database_url, KICKOFF_MAX_ATTEMPTS=2)
    repo = {"full_name": "octo/demo"}
    with ServerThread(create_app(settings, router=router)) as server, httpx.Client(
        base_url=server.url, trust_env=False
    ) as client:
        before = scrape(client)
        assert before[("kickoff_runs", (("state", "running"),))] == 1
        assert before[("kickoff_runs", (("state", "succeeded"),))] == 3
        assert before[("kickoff_queue_length", (("repository", "octo/demo"),))] == 3
        assert before[("kickoff_queue_length", (("repository", "octo/api"),))] == 1
        assert before[("kickoff_run_duration_seconds_count", ())] == 5
        assert before[("kickoff_run_duration_seconds_bucket", (("le", "600.0"),))] == 3
        assert before[("kickoff_inbox_deliveries", (("status", "dead"),))] == 1
        # The queue's sweeps have found nothing webhooks missed yet (tests/queue/test_webhook_state.py counts some).
        assert {kind: before[("kickoff_queue_drift_total", (("kind", kind),))]
                for kind in ("pulls", "labels", "reviews", "checks")} == dict.fromkeys(
            ("pulls", "labels", "reviews", "checks"), 0)

        assert send(client, "issues", {"action": "opened", "repository": repo}, "m-1") == 202
        assert send(client, "issues", {"action": "closed", "repository": repo}, "m-2") == 202
        assert send(client, "issues", {"action": "opened", "repository": repo}, "m-1") == 200  # a duplicate
        assert send(client, "issue_comment", {"action": "created", "repository": repo}, "m-3") == 202
        assert send(client, "ping", {"zen": "hi"}, "m-4") == 200  # answered, not stored

        def settled() -> bool:
            now = scrape(client)
            return now.get(("kickoff_deliveries_dead_total", (("event", "issue_comment"),)), 0) == 1 and now.get(
                ("kickoff_deliveries_processed_total", (("event", "issues"),)), 0) == 2

        wait_for(settled)

        async def move(store: Any) -> None:
            runs = RunStore(store)
            assert await runs.move(seeded.running_run, RunState.FAILED, "the runner vanished")
            assert await runs.transition(seeded.waiting_run, RunState.CANCELLED)

        on_store(database_url, move)
        after = scrape(client)

    assert after[("kickoff_deliveries_received_total", (("event", "issues"),))] == 2
    assert after[("kickoff_deliveries_received_total", (("event", "issue_comment"),))] == 1
    assert ("kickoff_deliveries_received_total", (("event", "ping"),)) not in after
    assert after[("kickoff_deliveries_processed_total", (("event", "issues"),))] == 2
    assert after[("kickoff_deliveries_failed_total", (("event", "issue_comment"),))] == 2  # both attempts
    assert after[("kickoff_deliveries_dead_total", (("event", "issue_comment"),))] == 1
    assert after[("kickoff_webhook_ack_seconds_count", ())] == 3
    assert after[("kickoff_webhook_ack_seconds_bucket", (("le", "+Inf"),))] == 3
    assert after[("kickoff_dispatch_lag_seconds_count", ())] == 3  # first claims only, not the retry
    assert after[("kickoff_runs", (("state", "running"),))] == 0
    assert after[("kickoff_runs", (("state", "failed"),))] == 2
    assert after[("kickoff_runs", (("state", "cancelled"),))] == 1
    assert after[("kickoff_runs", (("state", "waiting"),))] == 0
    assert after[("kickoff_run_duration_seconds_count", ())] == 6  # the failed run had started; the cancelled not
    assert after[("kickoff_inbox_deliveries", (("status", "dead"),))] == 2


def test_each_app_has_its_own_registry(sqlite_url: str) -> None:
    one, two = Metrics(), Metrics()
    one.delivery_received("issues", 0.001)
    assert one.registry is not two.registry
    assert b'kickoff_deliveries_received_total{event="issues"} 1.0' in one.render()
    assert b"kickoff_deliveries_received_total{" not in two.render()


def test_github_requests_and_rate_limit_come_from_the_gateway() -> None:
    class Gateway:
        request_counts = {("GET", 200): 3, ("POST", 403): 1}  # noqa: RUF012
        rate_limit_remaining = {7: 4990}  # noqa: RUF012

    metrics = Metrics()
    metrics._github.gateway = Gateway()
    text = metrics.render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("kickoff_github_requests_total", (("method", "GET"), ("status", "200")))] == 3
    assert samples[("kickoff_github_requests_total", (("method", "POST"), ("status", "403")))] == 1
    assert samples[("kickoff_github_rate_limit_remaining", (("installation", "7"),))] == 4990


def test_queue_drift_is_what_the_sweeps_counted() -> None:
    drift = Drift(pulls=2, checks=1)
    metrics = Metrics()
    metrics.watch_queue(drift)
    drift.labels += 3  # counted later by a sweep: read at the scrape, not copied
    text = metrics.render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert {kind: samples[("kickoff_queue_drift_total", (("kind", kind),))]
            for kind in ("pulls", "labels", "reviews", "checks")} == {"pulls": 2, "labels": 3, "reviews": 0,
                                                                      "checks": 1}
