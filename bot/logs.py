"""Structured logging that carries the delivery id and never prints a secret."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable

delivery_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("delivery_id", default=None)

REDACTED = "[redacted]"

# Token shapes GitHub documents (ghs_, ghp_, gho_, ghu_, ghr_, github_pat_) and the ways a credential is written
# in a header or URL. Token length and format are not assumed beyond the prefix.
_PATTERNS = [
    re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]+"),
    re.compile(r"(?i)\b(authorization:\s*(?:token|bearer|basic)\s+)\S+"),
    re.compile(r"(?i)\b((?:token|bearer)\s+)[A-Za-z0-9._\-~+/]{16,}=*"),
    re.compile(r"(x-access-token:)[^@\s]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),  # JWTs
]

# The process's own secrets (settings), kept for its life; a run's secrets, kept until the run ends. Values the
# patterns above redact whole (GitHub's tokens) need no entry, so minting tokens all day does not grow the list.
_known_secrets: set[str] = set()
_run_secrets: dict[int, set[str]] = {}


def register_secret(value: str | None, *, run_id: int | None = None) -> None:
    """Make a specific value (a webhook secret, a run's token) redacted wherever it appears in a log line; with
    `run_id`, until `forget_run_secrets(run_id)`."""
    if not value or len(value) < 6 or _PATTERNS[0].fullmatch(value):
        return
    if run_id is None:
        _known_secrets.add(value)
    else:
        _run_secrets.setdefault(run_id, set()).add(value)


def forget_run_secrets(run_id: int) -> None:
    """The run is over: its secrets are dead, so stop looking for them in every log line."""
    _run_secrets.pop(run_id, None)


def registered_secrets() -> frozenset[str]:
    """Every exact value redacted now (for tests and diagnostics)."""
    return frozenset(_known_secrets.union(*_run_secrets.values()))


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Remove every registered secret and every token-shaped string from text."""
    for secret in (*_known_secrets, *(v for values in _run_secrets.values() for v in values), *extra):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the current delivery id and redacts the rendered message (and any exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.delivery_id = delivery_id_var.get() or "-"
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "delivery_id": getattr(record, "delivery_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """Install one stderr handler on the root logger; safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(delivery_id)s] %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_kickoff", False):
            root.removeHandler(existing)
    handler._kickoff = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
