"""Credentials: exact-value redaction whatever their shape, and scrubbing from the runner's own environment."""

from __future__ import annotations

import json
import subprocess
import sys

from bot.runner_program.secrets import Secrets
from tests.runner_program.support import ROOT, new_token


def test_exact_values_are_redacted_whatever_their_shape() -> None:
    token, secret = new_token(), new_token()
    secrets = Secrets(git_token=token, run_secret=secret)
    text = f"clone with {token}; report with {secret}; key sk-live-123456789; ghs_abcdefABCDEF0123"
    redacted = secrets.redact(text, extra=["sk-live-123456789", "short"])
    assert token not in redacted
    assert secret not in redacted
    assert "sk-live-123456789" not in redacted
    assert "ghs_abcdef" not in redacted  # token shapes, via bot.logs.redact
    assert redacted.count("[redacted]") == 4
    assert Secrets(None, None).redact("nothing secret") == "nothing secret"


def test_the_runner_scrubs_its_credentials_from_proc_environ() -> None:
    token, secret = new_token(), new_token()
    code = (
        "import json, os, pathlib\n"
        "from bot.runner_program.secrets import take_secrets\n"
        "before = pathlib.Path('/proc/self/environ').read_bytes()\n"
        "s = take_secrets()\n"
        "after = pathlib.Path('/proc/self/environ').read_bytes()\n"
        "print(json.dumps({'read': [s.git_token, s.run_secret], 'before': before.decode(), 'after': after.decode(),\n"
        "                  'os_environ': [k for k in os.environ if k.startswith('KICKOFF_')]}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "KICKOFF_GIT_TOKEN": token,
           "KICKOFF_RUN_SECRET": secret}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    seen = json.loads(done.stdout)
    assert seen["read"] == [token, secret]
    assert token in seen["before"]
    assert token not in seen["after"]
    assert secret not in seen["after"]
    assert seen["os_environ"] == []
