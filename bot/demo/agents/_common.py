"""What the scripted agents share: argument handling, a short pause that looks like work, the final report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def workdir() -> Path:
    """The checkout the agent works in (`{workdir}`), checked to hold the sample project."""
    if len(sys.argv) < 2:
        raise SystemExit("usage: AGENT WORKDIR [PROMPT_FILE]")
    path = Path(sys.argv[1])
    if not (path / "calc.py").is_file():
        raise SystemExit(f"{path} has no calc.py: not the demo's sample repository")
    return path


def think(seconds: float) -> None:
    """Pause a little, so the runs are visibly running side by side."""
    time.sleep(seconds)


def report(summary: str, *, input_tokens: int, output_tokens: int) -> None:
    """The JSON object at the end of stdout that the `command` adapter reads."""
    print(json.dumps({"summary": summary, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                                    "cost_usd": 0.0, "turns": 1, "model": "scripted"}}))
