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
