"""A plugin router for crash tests in real `kickoff worker` processes (loaded through KICKOFF_PLUGINS).

Its effect is a row keyed by delivery id in a SQLite file of its own: written idempotently, so a delivery
handled twice still has its effect once. On the first attempt it then hangs, so the test can kill the worker
in the middle of the handler.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from bot.features import Features
from bot.routing import Event, Router

router: Router[Features] = Router()


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["CRASH_EFFECTS_DB"], timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS effects (delivery_id TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (delivery_id TEXT, pid INTEGER)")
    return conn


@router.on("crash_test")
async def record_effect(event: Event, services: Features) -> None:
    with _db() as conn:
        conn.execute("INSERT INTO attempts VALUES (?, ?)", (event.delivery_id, os.getpid()))
        conn.execute("INSERT OR IGNORE INTO effects VALUES (?)", (event.delivery_id,))
        (count,) = conn.execute("SELECT count(*) FROM attempts WHERE delivery_id = ?", (event.delivery_id,)).fetchone()
    if count == 1 and os.environ.get("CRASH_HANG_FIRST"):
        Path(os.environ["CRASH_MARKER"]).write_text(str(os.getpid()))
        await asyncio.sleep(3600)
