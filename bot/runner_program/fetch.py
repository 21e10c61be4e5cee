"""`kickoff run-agent --spec-url URL`: fetch the spec, once, with the ticket a remote backend handed the runner.

The ticket comes from `KICKOFF_SPEC_TICKET` (a GitHub Actions job gets it as a dispatch input, through `env:`). The
answer carries the spec and, apart from it, the run's report secret, which goes into this process's environment
as `KICKOFF_RUN_SECRET`, where the program reads (and scrubs) it like any other backend's. See bot/runs/tickets.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx

from bot.runner_program.secrets import scrub_environment
from bot.runspec import ENV_RUN_SECRET

ENV_SPEC_TICKET: Final = "KICKOFF_SPEC_TICKET"
ATTEMPTS: Final = 3


class SpecFetchError(Exception):
    """The spec could not be fetched; one line for stderr."""


def fetch_spec(url: str, ticket: str, *, transport: httpx.BaseTransport | None = None) -> tuple[str, str]:
    """`(spec JSON, report secret)` from the spec endpoint. Only a request that never reached Kickoff is retried:
    a ticket is spent by the first answer."""
    if urlsplit(url).scheme not in ("https", "http"):
        raise SpecFetchError(f"--spec-url must be an http(s) URL, not {url!r}")
    headers = {"Authorization": f"Bearer {ticket}", "Accept": "application/json"}
    with httpx.Client(timeout=30.0, transport=transport, follow_redirects=False) as client:
        for attempt in range(ATTEMPTS):
            try:
                response = client.get(url, headers=headers)
                break
            except httpx.ConnectError as exc:
                if attempt + 1 == ATTEMPTS:
                    raise SpecFetchError(f"cannot reach {urlsplit(url).netloc} ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise SpecFetchError(f"fetching the spec failed ({type(exc).__name__})") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        raise SpecFetchError(f"Kickoff refused the spec ({response.status_code}: {detail or response.reason_phrase})")
    try:
        body = response.json()
        spec, secret = body["spec"], body["credentials"][ENV_RUN_SECRET]
    except (ValueError, KeyError, TypeError):
        raise SpecFetchError("Kickoff's answer is not a spec") from None
    if not isinstance(spec, dict) or not isinstance(secret, str) or not secret:
        raise SpecFetchError("Kickoff's answer is not a spec")
    return json.dumps(spec), secret


def spec_from_url(url: str, *, transport: httpx.BaseTransport | None = None) -> Path:
    """Fetch the spec into a private file and put the report secret into the environment; the file's path."""
    ticket = os.environ.get(ENV_SPEC_TICKET, "")
    scrub_environment([ENV_SPEC_TICKET])
    if not ticket:
        raise SpecFetchError(f"{ENV_SPEC_TICKET} is not set; --spec-url needs the run's spec ticket")
    spec, secret = fetch_spec(url, ticket, transport=transport)
    os.environ[ENV_RUN_SECRET] = secret
    folder = Path(tempfile.mkdtemp(prefix="kickoff-spec-"))
    path = folder / "spec.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(spec)
    return path
