"""Attacks from inside the agent phase, on the real runner program with the real bubblewrap: the agent (a `python -c`
program, since nothing of this checkout's tests is visible in the sandbox) looks for secrets, leaves processes
behind, dials out and reads files it should not see. Each attack also runs unsandboxed where that shows the attack is
real (the test could fail) or that the unsandboxed kill holds too."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.runner_program.program import Workspace
from tests.runner_program.sandbox_support import bwrap, host_processes_with, wait_until_gone  # noqa: F401 - fixture
from tests.runner_program.support import PYTHON, git, make_remote, make_spec, run_program, runner_env

pytestmark = pytest.mark.usefixtures("bwrap")

SECRET_PREFIX = "kickoffsecret"

SNOOP = r"""
import hashlib, json, os, sys
prefix, digest, length, scan = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "scan"
hits, pids, cmdlines, files = [], [], [], 0
def check(where, data):
    start = 0
    while (i := data.find(prefix, start)) != -1:
        if hashlib.sha256(data[i:i + length]).hexdigest() == digest:
            hits.append(where)
            return
        start = i + 1
for entry in os.listdir("/proc"):
    if not entry.isdigit():
        continue
    pids.append(int(entry))
    for part in ("environ", "cmdline"):
        try:
            data = open(f"/proc/{entry}/{part}", "rb").read()
        except OSError:
            continue
        check(f"/proc/{entry}/{part}", data)
        if part == "cmdline":
            cmdlines.append(data.replace(b"\0", b" ").decode(errors="replace")[:300])
check("own environment", b"\0".join(f"{k}={v}".encode() for k, v in os.environ.items()))
skip = ("/proc", "/sys", "/dev", "/usr")
for root, dirs, names in os.walk("/") if scan else ():
    dirs[:] = [d for d in dirs if not os.path.join(root, d).startswith(skip)]
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 8 << 20:
                continue
            data = open(path, "rb").read()
        except OSError:
            continue
        files += 1
        check(path, data)
print("SNOOP " + json.dumps({"hits": hits, "pids": pids, "cmdlines": cmdlines, "files": files}))
"""

LEAVE_BEHIND = r"""
import os, subprocess, sys, time
token = sys.argv[1]
subprocess.Popen(["setsid", "env", "-i", "sh", "-c", f"exec sleep 300.{token}"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # a classic daemon: fork, setsid, fork again, the middle one exits
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", f"while :; do sleep 0.1; done # {token}"])
    os._exit(0)
needles = (f"sleep\x00300.{token}".encode(), f"done # {token}".encode())
def others():
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
            except OSError:
                continue
            found |= {needle for needle in needles if needle in cmdline}
    return len(found)
deadline = time.monotonic() + 10
while others() < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
print(f"launched {others()}", flush=True)
if sys.argv[2] == "hang":
    time.sleep(600)
"""

DIAL = r"""
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as conn:
        conn.sendall(b"hello from the agent")
    print("DIAL connected")
except OSError as exc:
    print(f"DIAL failed: {exc}")
"""

READ = r"""
import json, os, sys
seen = {}
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            seen[path] = sorted(os.listdir(path))
        else:
            seen[path] = open(path, "rb").read().decode(errors="replace")
    except OSError as exc:
        seen[path] = f"ERROR {type(exc).__name__}"
with open("AGENT_WAS_HERE.md", "w") as out:
    out.write("the agent can write its copy\n")
print("READ " + json.dumps(seen))
"""


def agent(code: str, *args: str) -> list[str]:
    return [PYTHON, "-c", code, *args]


def tagged(transcript: str, tag: str) -> Any:
    lines = [line for line in transcript.splitlines() if line.startswith(f"{tag} ")]
    assert lines, f"the agent printed no {tag} line:\n{transcript}"
    return json.loads(lines[-1][len(tag) + 1:])


def new_secret() -> str:
    return f"{SECRET_PREFIX}{secrets.token_hex(24)}"


@pytest.mark.parametrize("mode", ["required", "off"])
def test_the_agent_finds_no_secret_of_kickoff_or_the_runner_in_proc_or_any_file(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    # This test process stands for Kickoff: its secrets are in its environment, as they are in the server's.
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    monkeypatch.setenv("PRIVATE_KEY", secret)
    remote = make_remote(tmp_path)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    scan = "scan" if mode == "required" else "noscan"  # unsandboxed, the whole host is readable: /proc suffices
    # The scan reads every file it can reach, at the runner's lowest CPU priority: on a machine busy with other
    # work it gets little CPU, so it has minutes, not the usual one.
    spec = make_spec(remote, agent(SNOOP, SECRET_PREFIX, digest, str(len(secret)), scan), sandbox=mode,
                     timeout_seconds=600)
    env = runner_env(token=secret, DATABASE_URL=f"postgresql://kickoff:{secret}@db.internal/kickoff")
    out = run_program(tmp_path, spec, env=env, timeout=660)
    assert out.process.returncode == 0, out.process.stderr
    assert out.result.outcome == "no_changes", out.result.reason
    seen = tagged(out.result.transcript_tail, "SNOOP")
    if mode == "off":
        # The attack is real: unsandboxed, the runner's environment (its token) is one /proc read away.
        assert seen["hits"], seen
        return
    assert seen["hits"] == []
    assert seen["files"] > 100, "the agent did scan the files it can reach"
    assert os.getpid() not in seen["pids"] or all("pytest" not in line for line in seen["cmdlines"])
    joined = "\n".join(seen["cmdlines"])
    assert "pytest" not in joined, "Kickoff's process (this test) must not be visible"
    assert "run-agent" not in joined, "the runner's process must not be visible"
    assert len(seen["pids"]) <= 4, f"only the sandbox's own processes: {seen['cmdlines']}"


@pytest.mark.parametrize("mode", ["required", "off"])
@pytest.mark.parametrize("ending", ["exit", "hang"])
def test_setsid_env_i_and_a_double_forked_daemon_are_gone_when_the_run_ends(
    tmp_path: Path, mode: str, ending: str
) -> None:
    remote = make_remote(tmp_path)
    token = str(secrets.randbelow(10**12) + 10**12)
    timeout = {"timeout_seconds": 10} if ending == "hang" else {}
    spec = make_spec(remote, agent(LEAVE_BEHIND, token, ending), sandbox=mode, **timeout)
    try:
        out = run_program(tmp_path, spec)
        assert out.process.returncode == 0, out.process.stderr
        assert out.result.outcome == ("timed_out" if ending == "hang" else "no_changes"), out.result.reason
        assert "launched 2" in out.result.transcript_tail, out.result.transcript_tail
        assert wait_until_gone(token) == []
    finally:
        for pid in host_processes_with(token):  # never leave them behind for the next test, even on failure
            os.kill(pid, 9)


@contextmanager
def tcp_server() -> Iterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                received.append(conn.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


@pytest.mark.parametrize("network", ["host", "none"])
def test_network_none_cannot_reach_a_server_on_the_runners_loopback(tmp_path: Path, network: str) -> None:
    remote = make_remote(tmp_path)
    with tcp_server() as (port, received):
        spec = make_spec(remote, agent(DIAL, str(port)), sandbox="required", agent={"network": network})
        out = run_program(tmp_path, spec)
    assert out.result.outcome == "no_changes", out.result.reason
    if network == "host":
        assert "DIAL connected" in out.result.transcript_tail
        assert received == [b"hello from the agent"]
    else:
        assert "DIAL failed" in out.result.transcript_tail
        assert received == []


def test_the_agent_reads_nothing_outside_its_binds(tmp_path: Path) -> None:
    secret = new_secret()
    remote = make_remote(tmp_path)
    beside = tmp_path / "next-to-the-workspace.txt"
    beside.write_text(secret)
    # A Kickoff checkout on the runner's PATH: its directory holds .env, so it is not bound; its bin/ is.
    checkout = tmp_path / "kickoff-checkout"
    (checkout / "bin").mkdir(parents=True)
    (checkout / ".env").write_text(f"WEBHOOK_SECRET={secret}\n")
    tool = checkout / "bin" / "house-tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    home_secret = Path.home() / f".kickoff-sandbox-test-{secrets.token_hex(6)}"
    home_secret.write_text(secret)
    workspace = Workspace(tmp_path / "ws")
    spec_file = tmp_path / "spec.json"  # where run_program writes the spec
    paths = [str(beside), str(checkout / ".env"), str(checkout), str(tool), str(home_secret), str(Path.home()),
             str(spec_file), str(workspace.root), str(workspace.root / "result.json"), str(workspace.prompt),
             "/etc/passwd", "/etc/group"]
    try:
        spec = make_spec(remote, agent(READ, *paths), sandbox="required", sandbox_hide=["/etc/passwd"])
        env = runner_env(PATH=f"{checkout}:{checkout / 'bin'}:{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env)
    finally:
        home_secret.unlink()
    assert out.result.outcome == "succeeded", out.result.reason
    seen = tagged(out.result.transcript_tail, "READ")
    for hidden in (beside, checkout / ".env", home_secret, spec_file, workspace.root / "result.json"):
        assert seen[str(hidden)].startswith("ERROR"), (hidden, seen[str(hidden)])
    assert secret not in out.result.transcript_tail
    assert seen[str(checkout)] == ["bin"], "the checkout itself is not bound, only its bin/ on PATH"
    assert seen[str(tool)].startswith("#!/bin/sh"), "a PATH directory is readable"
    assert seen[str(workspace.prompt)] == spec["prompt"]
    assert "root:" not in seen["/etc/passwd"], "a hidden path under a system directory is masked"
    assert "root" in seen["/etc/group"]
    listing = seen[str(workspace.root)]
    assert not {"spec.json", "result.json", "runner.log", "private"} & set(listing), listing
    assert remote.show("kickoff/7-fix-house-42", "AGENT_WAS_HERE.md") == "the agent can write its copy\n"


def test_a_required_sandbox_that_does_not_work_fails_the_run_and_runs_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    marker = tmp_path / "agent-ran"
    spec = make_spec(remote, [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], sandbox="required")
    out = run_program(tmp_path, spec, env=runner_env(KICKOFF_BWRAP=str(tmp_path / "no-bwrap")))
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert out.result.reason.startswith("the agent's sandbox is required but does not work: bubblewrap is not "
                                        "installed")
    assert not marker.exists()


def test_auto_without_a_working_sandbox_runs_unsandboxed_and_says_so(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    marker = tmp_path / "agent-ran"
    spec = make_spec(remote, [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], sandbox="auto")
    out = run_program(tmp_path, spec, env=runner_env(KICKOFF_BWRAP=str(tmp_path / "no-bwrap")))
    assert out.result.outcome == "no_changes", out.result.reason
    assert marker.exists()
    assert out.result.transcript_tail.startswith("[kickoff: running the agent WITHOUT a sandbox: bubblewrap is not "
                                                 "installed")
    assert "running the agent without a sandbox" in out.process.stderr + out.process.stdout


JUDGE = r"""
import json, os, sys
prompt = open(sys.argv[1]).read()
private = sys.argv[2]
try:
    os.listdir(private)
    sees = "private clone visible"
except OSError:
    sees = "hidden"
tokens = [name for name in os.environ if "TOKEN" in name or "SECRET" in name]
print(json.dumps({"ranking": [{"run": 1, "reason": f"{sees}; env {tokens}; diff seen {'+changed' in prompt}"}]}))
"""


def test_a_judge_runs_in_the_same_sandbox_without_the_token_or_the_private_clone(tmp_path: Path) -> None:
    secret = new_secret()
    remote = make_remote(tmp_path)
    seed = tmp_path / "attempt"
    git("clone", "-q", remote.url, str(seed), cwd=tmp_path)
    git("checkout", "-q", "-b", "kickoff/7-fix-a-1", cwd=seed)
    (seed / "NOTES.md").write_text("changed\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=a", "-c", "user.email=a@example.com", "commit", "-q", "-m", "attempt", cwd=seed)
    git("push", "-q", "origin", "kickoff/7-fix-a-1", cwd=seed)
    workspace = Workspace(tmp_path / "ws")
    spec = make_spec(remote, agent(JUDGE, "{prompt_file}", str(workspace.private)), sandbox="required",
                     run_id=9, branch="kickoff/7-fix-judge-house-9", prompt="Judge.",
                     judge={"attempts": [{"run_id": 1, "branch": "kickoff/7-fix-a-1", "facts": "run 1"}]})
    out = run_program(tmp_path, spec, env=runner_env(token=secret, run_secret=new_secret()))
    assert out.result.outcome == "succeeded", out.result.reason
    assert json.loads(out.result.report or "") == {"ranking": [
        {"run": 1, "reason": "hidden; env []; diff seen True"}]}
    assert secret not in out.result.transcript_tail
    assert remote.branch_sha("kickoff/7-fix-judge-house-9") is None
