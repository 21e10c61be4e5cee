"""A stand-in for `kickoff run-agent`: speaks the runner protocol and does what its agent's `command` says.

Directives (the words of the agent command in the repo config):
  sleep=S          work for S seconds
  outcome=O        succeeded (default) | no_changes | failed
  exit=N           crash: exit with code N, writing and reporting nothing
  silent           send no reports (the result file only)
  no_started       skip the `started` report
  child            start a child process (in the runner's group) that ignores SIGTERM
  ignore_term      ignore SIGTERM
Every run appends JSON lines to $FAKE_RUNNER_LOG: a `start` record (what the runner saw) and an `end` record.
Standard library only, so it starts fast.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any


def record(entry: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_RUNNER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def post(url: str | None, secret: str, run_id: int, event: str, result: dict[str, Any] | None = None) -> int:
    if not url:
        return 0
    body = {"run_id": run_id, "event": event, "at": datetime.now(UTC).isoformat(), "result": result}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback test server
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return -1


def main() -> int:
    started = time.time()
    args = sys.argv[1:]
    spec_path = args[args.index("--spec") + 1]
    result_path = args[args.index("--result") + 1]
    spec_text = open(spec_path, encoding="utf-8").read()  # noqa: SIM115
    spec = json.loads(spec_text)
    run_id = spec["run_id"]
    words = spec["agent"]["command"]
    options = dict(word.split("=", 1) for word in words if "=" in word)
    flags = {word for word in words if "=" not in word}
    token = os.environ.get("KICKOFF_GIT_TOKEN", "")
    secret = os.environ.get("KICKOFF_RUN_SECRET", "")
    record({
        "run": run_id, "event": "start", "t": started, "pid": os.getpid(), "pgid": os.getpgid(0),
        "argv": sys.argv, "spec": spec_text, "cwd": os.getcwd(), "env": sorted(os.environ),
        "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None,
        "spec_mode": oct(os.stat(spec_path).st_mode & 0o777),
    })
    atexit.register(lambda: record({"run": run_id, "event": "end", "t": time.time(), "pid": os.getpid()}))
    if "ignore_term" in flags:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "child" in flags:
        subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
                          f"fake-runner-child-of-run-{run_id}-in-{os.getcwd()}"])
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = None if "silent" in flags else spec.get("report_url")
    if "no_started" not in flags:
        post(url, secret, run_id, "started")
    time.sleep(float(options.get("sleep", "0")))
    if "exit" in options:
        return int(options["exit"])
    outcome = options.get("outcome", "succeeded")
    result = {
        "run_id": run_id, "outcome": outcome, "branch": spec["branch"],
        "reason": "the agent gave up" if outcome == "failed" else None,
        "pushed": outcome == "succeeded", "files_changed": ["FIXED.txt"] if outcome == "succeeded" else [],
        "summary": "fake run", "usage": {"input_tokens": 11, "output_tokens": 22, "cost_usd": 0.5},
        "duration_seconds": time.time() - started,
    }
    with open(result_path, "w", encoding="utf-8") as file:
        json.dump(result, file)
    status = post(url, secret, run_id, "finished", result)
    record({"run": run_id, "event": "reported", "status": status})
    return 0


if __name__ == "__main__":
    sys.exit(main())
