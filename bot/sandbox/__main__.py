"""Run the sandbox as its own process: `python -m bot.sandbox --root DIR [--port N]`.

Prints one JSON line (`{"url": ...}`) once it serves, then runs until SIGINT/SIGTERM. Drive it through the HTTP
control API (`POST {url}/_sandbox/call/{verb}`), as the demo and end-to-end tests do.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from bot.sandbox.sandbox import Sandbox
from bot.sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description="A stateful GitHub simulator")
    parser.add_argument("--root", type=Path, help="where the bare repositories live (default: a temporary dir)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-fidelity", action="store_true", help="do not check against GitHub's description")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="github-sandbox-") as tmp:
        root = args.root or Path(tmp)
        with (
            Sandbox(root, fidelity=not args.no_fidelity) as sandbox,
            SandboxServer(sandbox, host=args.host, port=args.port) as url,
        ):
            print(json.dumps({"url": url, "root": str(root)}), flush=True)
            stop.wait()
            violations = sandbox.violations
    for v in violations:
        print(f"fidelity violation: {v}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
