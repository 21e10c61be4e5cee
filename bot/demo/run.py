"""`kickoff demo`: the whole story offline, with zero configuration and zero credentials.

A GitHub simulator and Kickoff start in this process on loopback ports; a sample repository with a failing test gets
an issue labelled `agent:fix`; three scripted agents fix it three ways; Kickoff opens three pull requests and queues
them; a reviewer approves the head; Kickoff updates it with `main` and merges it; the siblings are superseded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.live import Live

from bot.demo import sample
from bot.demo.harness import StoryTimeout, World, kickoff_world
from bot.demo.story import Phase, Progress, Story, Timeouts
from bot.demo.summary import build_summary, write_summary
from bot.demo.view import print_phase, print_summary, render

EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_UNAVAILABLE: Final = 2
LOG_TAIL_LINES: Final = 25

REAL_AGENT_NEEDS: Final = {
    "claude": ("claude", ("ANTHROPIC_API_KEY",)),
    "codex": ("codex", ("OPENAI_API_KEY",)),
    "gemini": ("gemini", ("GEMINI_API_KEY",)),
    "aider": ("aider", ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")),
}
"""Each built-in agent: its program, and the keys of which it needs one (docs/agents.md)."""


def _usable(agent: str, env: dict[str, str]) -> tuple[bool, bool]:
    program, keys = REAL_AGENT_NEEDS[agent]
    return shutil.which(program, path=env.get("PATH")) is not None, any(env.get(key) for key in keys)


def available_real_agents(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The built-in agents `--real-agents` can use here: program on PATH and a key in the environment."""
    env = dict(os.environ if environ is None else environ)
    return tuple(agent for agent in REAL_AGENT_NEEDS if all(_usable(agent, env)))


def missing_real_agents(environ: dict[str, str] | None = None) -> list[str]:
    """Why `--real-agents` cannot run: nothing when one agent is installed and keyed, else what each lacks."""
    env = dict(os.environ if environ is None else environ)
    if available_real_agents(env):
        return []
    missing: list[str] = []
    for agent, (program, keys) in REAL_AGENT_NEEDS.items():
        installed, keyed = _usable(agent, env)
        if not installed:
            missing.append(f"`{program}` is not on PATH ({agent})")
        if not keyed:
            missing.append(f"{' or '.join(keys)} is not set ({agent})")
    return missing


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Kickoff's and the simulator's logs go to a file, so they do not tear the live view."""
    from bot.logs import ContextFilter

    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(delivery_id)s] %(message)s"))
    saved = (root.level, list(root.handlers))
    for existing in saved[1]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved[0])
        for existing in saved[1]:
            root.addHandler(existing)


async def _wait_for_interrupt() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def play(
    root: Path,
    console: Console,
    *,
    real_agents: bool = False,
    keep: bool = False,
    json_path: Path | None = None,
) -> int:
    """Run the story in `root`; print the live view and the summary; the exit code."""
    progress = Progress()
    agents = available_real_agents() if real_agents else tuple(sample.SCRIPTED_AGENTS)
    timeouts = Timeouts.for_real_agents() if real_agents else Timeouts()
    live_view = console.is_terminal
    world: World | None = None
    ok = False
    started = time.monotonic()

    def phase_done(phase: Phase) -> None:
        if not live_view:
            print_phase(console, phase)

    live = Live(render(progress), console=console, refresh_per_second=8, transient=False) if live_view else None

    async def animate() -> None:
        while live is not None:
            live.update(render(progress))
            await asyncio.sleep(0.125)

    animation: asyncio.Task[None] | None = None
    try:
        async with kickoff_world(root) as world:
            story = Story(world, progress, agents=agents, timeouts=timeouts, on_phase=phase_done, real=real_agents)
            if live is not None:
                live.start()
                animation = asyncio.create_task(animate(), name="demo-view")
            try:
                await story.play()
                ok = True
            except StoryTimeout as exc:
                progress.error = str(exc)
            except Exception as exc:
                logging.getLogger(__name__).exception("the demo failed")
                progress.error = f"{type(exc).__name__}: {exc}"
            finally:
                with contextlib.suppress(Exception):
                    await story.refresh()
                if animation is not None:
                    animation.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await animation
                if live is not None:
                    live.update(render(progress, final=True))
                    live.stop()
            summary = build_summary(progress, world, ok=ok, duration=time.monotonic() - started)
            if json_path is not None:
                write_summary(json_path, summary)
            print_summary(console, summary)
            if keep:
                console.print(f"Dashboard: [bold]{world.kickoff_url}/[/]   GitHub sandbox: {world.github_url}   "
                              "(Ctrl-C to stop)", highlight=False)
                await _wait_for_interrupt()
    except Exception as exc:  # the pair did not start: say so in one line
        if world is None:
            progress.error = f"could not start the sandbox and Kickoff: {type(exc).__name__}: {exc}"
            summary = build_summary(progress, None, ok=False, duration=time.monotonic() - started)
            if json_path is not None:
                write_summary(json_path, summary)
            console.print(f"[bold red]kickoff demo:[/] {progress.error}", highlight=False)
            return EXIT_INCOMPLETE
        raise
    if not ok:
        log = root / "kickoff.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            console.print("[dim]Last lines of Kickoff's log:[/]", highlight=False)
            console.print("\n".join(tail), markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK if ok else EXIT_INCOMPLETE


def main(*, real_agents: bool = False, keep: bool = False, json_path: Path | None = None) -> int:
    """The `kickoff demo` command; returns the process's exit code."""
    console = Console()
    if real_agents:
        missing = missing_real_agents()
        if missing:
            print(f"kickoff demo --real-agents: {'; '.join(missing)}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    with tempfile.TemporaryDirectory(prefix="kickoff-demo-") as tmp:
        root = Path(tmp)
        with _log_to(root / "kickoff.log"):
            return asyncio.run(play(root, console, real_agents=real_agents, keep=keep, json_path=json_path))
