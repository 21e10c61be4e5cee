"""Simulated CI: run a repository's configured command in a fresh checkout of one commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.git import BareRepo
from bot.sandbox.state import CiConfig

TAIL_LINES = 40
SUMMARY_LIMIT = 60000


@dataclass(frozen=True)
class CiResult:
    conclusion: str  # success | failure | timed_out
    exit_code: int | None
    title: str
    summary: str


def _tail(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
    text = "\n".join(lines)
    return text[-SUMMARY_LIMIT:]


def _summary(argv: list[str], verdict: str, tail: str) -> str:
    command = " ".join(argv)
    return f"`{command}` {verdict}.\n\n```\n{tail}\n```"


async def run_ci(repo: BareRepo, sha: str, config: CiConfig) -> CiResult:
    """Check out `sha` into a temporary directory, run `config.argv` there, and judge it by its exit code."""
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="sandbox-ci-")
    try:
        return await _run_in(repo, sha, config, Path(tmp) / "checkout")
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)  # a checkout can be big: not on the event loop


async def _run_in(repo: BareRepo, sha: str, config: CiConfig, work: Path) -> CiResult:
    await repo.checkout(sha, work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"CI": "true", "GITHUB_SHA": sha, **config.env})
    proc = await asyncio.create_subprocess_exec(
        *config.argv,
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=config.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = await proc.communicate()
        return CiResult(
            "timed_out",
            None,
            "CI timed out",
            _summary(config.argv, f"timed out after {config.timeout:g}s", _tail(output)),
        )
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    code = proc.returncode
    tail = _tail(output)
    if code == 0:
        return CiResult("success", 0, "CI passed", _summary(config.argv, "passed", tail))
    return CiResult("failure", code, f"CI failed (exit {code})", _summary(config.argv, f"exited {code}", tail))
