"""The `kickoff` commands load only what they use: `kickoff status` reads the database without the web stack, the
GitHub client or the migrations, and `--help`, `version` and `config` start without the database layer at all.

Each command is a real process running the `kickoff` entry point (`bot.cli:main`), wrapped so that, as it exits, it
writes the names of every module it loaded. Nothing is timed here: the speed is bench/cli_startup.py's, with its
figures in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.services import open_store
from bot.store.db import Store
from bot.store.models import utcnow
from tests.dashboard.conftest import kickoff_env
from tests.dashboard.scenario import REPO, seed
from tests.support import make_settings

WRAPPER = """
import atexit, json, os, sys

def dump():
    with open(os.environ["KICKOFF_MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(dump)
from bot.cli import main
main()
"""
WEB_AND_GITHUB = frozenset({"githubkit", "fastapi", "starlette", "jinja2", "uvicorn", "httpx"})
"""What `kickoff serve` and the GitHub gateway need, and no reading command does."""
SERVER = frozenset({"bot.web", "bot.root", "bot.github", "bot.handlers", "bot.worker", "bot.dashboard.routes"})
"""Kickoff's own modules that pull those in."""
DATABASE = frozenset({"sqlalchemy", "aiosqlite", "asyncpg", "alembic", "pydantic_settings"})


def kickoff_loading(args: list[str], cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `kickoff ARGS` as a user does; its result and every module it had loaded when it exited."""
    out = cwd / "modules.json"
    out.unlink(missing_ok=True)
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120, check=False, env=kickoff_env(KICKOFF_MODULES_OUT=str(out), **env))
    return result, set(json.loads(out.read_text()))


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def loaded(modules: set[str], names: frozenset[str]) -> set[str]:
    """Which of `names` (packages or modules) are among `modules`, themselves or through a submodule."""
    return {name for name in names if any(m == name or m.startswith(f"{name}.") for m in modules)}


def seeded_database(database_url: str) -> None:
    async def main() -> None:
        store = await open_store(make_settings(database_url))  # migrates a SQLite file
        try:
            await seed(store, utcnow())
        finally:
            await store.close()

    asyncio.run(main())


def test_kickoff_status_loads_neither_the_web_stack_nor_the_github_client(database_url: str,
                                                                          tmp_path: Path) -> None:
    seeded_database(database_url)
    result, modules = kickoff_loading(["status"], tmp_path, DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    # The whole picture was read and printed: every section's modules ran.
    for title in ("1 installation(s), 2 repositories", f"Review queue of {REPO} into main", f"Runs in {REPO}",
                  "Outcomes over the last 30 days", "Failed and dead deliveries"):
        assert title in result.stdout
    assert {"bot.dashboard.queries", "bot.dashboard.outcomes", "bot.queue.model", "bot.status", "sqlalchemy"} <= modules
    assert loaded(modules, WEB_AND_GITHUB) == set()
    assert loaded(modules, SERVER) == set()
    # The schema is current, so opening the store never loads alembic and its migration scripts.
    assert loaded(modules, frozenset({"alembic", "mako"})) == set()
    # Nor the config loader and its YAML parser: the queue needs only the config's model.
    assert loaded(modules, frozenset({"yaml", "bot.config.loader"})) == set()


def test_kickoff_status_on_a_new_sqlite_file_still_migrates_it(tmp_path: Path) -> None:
    """What a current database skips is still done when it is needed: the embedded SQLite default migrates itself
    (and only then loads alembic)."""
    database_url = f"sqlite:///{tmp_path / 'new.db'}"
    result, modules = kickoff_loading(["status"], tmp_path, DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "Installations: none recorded yet." in result.stdout
    assert "alembic" in packages(modules)
    assert loaded(modules, WEB_AND_GITHUB | SERVER) == set()

    async def current() -> bool:
        store = Store(database_url)
        try:
            return await store.is_current()
        finally:
            await store.close()

    assert asyncio.run(current())
    _again, modules = kickoff_loading(["status"], tmp_path, DATABASE_URL=database_url)
    assert "alembic" not in packages(modules)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--help"], "Kick off parallel AI coding agents"),
        (["version"], "0.1.0"),
        (["status", "--help"], "Print installations, review queues"),
        (["serve", "--help"], "Serve the webhook endpoint"),
        (["config", "schema"], '"title": "Kickoff repository config (.github/kickoff.yml)"'),
        (["config", "validate", "kickoff.yml"], "kickoff.yml: valid"),
        (["init-workflow", "repo", "--url", "https://kickoff.example.com"], "wrote "),
    ],
)
def test_light_commands_load_no_database_and_no_server(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "kickoff.yml").write_text("tasks:\n  fix: {agents: [claude]}\n")
    (tmp_path / "repo").mkdir()
    result, modules = kickoff_loading(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert says in result.stdout
    assert loaded(modules, WEB_AND_GITHUB | SERVER | DATABASE) == set()
    assert "bot.settings" not in modules
