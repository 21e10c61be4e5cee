"""Logs carry the delivery id and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import REDACTED, ContextFilter, JsonFormatter, delivery_id_var, redact, register_secret


@pytest.mark.parametrize(
    "secret_text",
    [
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "Authorization: token v1.1f699f1069f60xxxabcdef0123456789",
        "Authorization: Bearer abc.def.ghi",
        "https://x-access-token:s3cr3t-tok3n@github.com/o/r.git",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.c2lnbmF0dXJl",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_token_shapes_are_redacted(secret_text: str) -> None:
    out = redact(f"calling GitHub with {secret_text} now")
    assert REDACTED in out
    for fragment in ("16C7e42F", "abcdefghijklmnop", "1f699f10", "abc.def.ghi", "s3cr3t", "c2lnbmF0dXJl", "MIIEow"):
        assert fragment not in out


def test_registered_secret_is_redacted_anywhere() -> None:
    register_secret("plain-webhook-secret")
    assert redact("the secret plain-webhook-secret leaked") == f"the secret {REDACTED} leaked"


def test_json_log_line_has_delivery_id_and_no_secret() -> None:
    register_secret("hunter2-hunter2")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    token = delivery_id_var.set("abc-123")
    try:
        logger.warning("token %s", "hunter2-hunter2")
        try:
            raise RuntimeError("failed with ghs_0123456789abcdef")
        except RuntimeError:
            logger.exception("boom")
    finally:
        delivery_id_var.reset(token)
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["delivery_id"] == "abc-123"
    assert lines[0]["message"] == f"token {REDACTED}"
    assert "ghs_0123456789abcdef" not in stream.getvalue()
    assert "RuntimeError" in lines[1]["exception"]


def test_a_runs_secrets_are_forgotten_when_it_ends_and_the_process_ones_are_kept() -> None:
    from bot.logs import forget_run_secrets, registered_secrets

    register_secret("process-webhook-secret-1")
    register_secret("report-secret-of-run-77", run_id=77)
    assert redact("x report-secret-of-run-77 y") == f"x {REDACTED} y"
    forget_run_secrets(77)
    assert "report-secret-of-run-77" not in registered_secrets()
    assert "process-webhook-secret-1" in registered_secrets()
    assert redact("process-webhook-secret-1") == REDACTED


def test_a_long_running_process_does_not_accumulate_secrets() -> None:
    """Ten thousand runs, each with a report secret and a run token, then a day of installation tokens."""
    import secrets

    from bot.logs import forget_run_secrets, registered_secrets

    before = len(registered_secrets())
    for run_id in range(100_000, 110_000):
        register_secret(secrets.token_urlsafe(32), run_id=run_id)
        register_secret("ghs_" + secrets.token_hex(18), run_id=run_id)
        forget_run_secrets(run_id)
    for _ in range(1000):  # what the gateway registers process-wide as it mints tokens
        register_secret("ghs_" + secrets.token_hex(18))
    assert len(registered_secrets()) == before
    leaked = "ghs_" + secrets.token_hex(18)
    register_secret(leaked)
    assert leaked not in redact(f"token {leaked}")  # GitHub's token shape is still redacted, by its pattern


async def test_the_scheduler_forgets_a_runs_secrets_when_it_ends(tmp_path: object) -> None:
    """A real scheduler start (the report secret and the run token registered), a real end through the store."""
    from pathlib import Path

    from bot.logs import registered_secrets
    from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET
    from tests.runs.support import FakeBackend, repo_config, world

    # The fake GitHub's run tokens are the same strings in every test: another test in this process may have
    # registered one process-wide, so only what this test added is expected to go.
    before = registered_secrets()
    async with world(f"sqlite:///{tmp_path}/k.db", Path(str(tmp_path))) as w:
        w.default_config = repo_config(["a0", "a1"])
        _, (ended, alive) = await w.add_trigger(["a0", "a1"])
        backend = FakeBackend()
        scheduler = w.scheduler(backend)
        await scheduler.step()
        held = {run_id: (given[ENV_RUN_SECRET], given[ENV_GIT_TOKEN]) for run_id, given in backend.secrets.items()}
        assert set(held[ended.id]) <= registered_secrets()
        await backend.end(ended.id, None, code=3)  # the runner died: the scheduler fails the run
        assert await w.runs.state_of(ended.id) == "failed"
        assert not (set(held[ended.id]) - before) & registered_secrets()
        assert held[alive.id][0] in registered_secrets()  # the other run is still going
        await w.runs.move(alive.id, "cancelled", "cancelled")
        assert held[alive.id][0] not in registered_secrets()
