"""Write docs/img/dashboard.png: the dashboard of the tests' scenario, in Debian's headless Chromium.

    .venv/bin/python scripts/screenshot_dashboard.py [--out docs/img/dashboard.png] [--width 1280]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.services import open_store  # noqa: E402
from bot.store.models import utcnow  # noqa: E402
from bot.web import create_app  # noqa: E402
from tests.dashboard.scenario import seed  # noqa: E402
from tests.support import ServerThread, make_settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(f"sqlite:///{tmp}/kickoff.db", GITHUB_API_URL="https://api.github.com")

        async def prepare() -> None:
            store = await open_store(settings)
            try:
                await seed(store, utcnow())
            finally:
                await store.close()

        asyncio.run(prepare())
        with ServerThread(create_app(settings, run_worker=False)) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
                page.goto(server.url + "/")
                page.wait_for_selector("table.queue tbody tr[data-pr]")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
            finally:
                browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
