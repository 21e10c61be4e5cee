"""The demo's sample repository: a small Python project with a failing test, and its `.github/kickoff.yml`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Final

OWNER: Final = "acme"
REPO: Final = "calculator"
MAINTAINER: Final = "mona"  # labels the issue; holds `maintain`
REVIEWER: Final = "hubot-reviewer"  # approves the head of the queue; holds `write`
ISSUE_TITLE: Final = "add() returns the wrong result"
ISSUE_BODY: Final = (
    "`calc.add(2, 3)` returns `-1`; it should return `5`. `python -m unittest` fails on `test_add`.\n"
)
SCRIPTED_AGENTS: Final = {"operator": "operator_fix", "rewrite": "rewrite", "fix-and-test": "fix_and_test"}
"""Agent name → its module in `bot.demo.agents`: three different, deterministic fixes."""
REAL_AGENTS: Final = ("claude", "codex", "gemini", "aider")
"""The built-in agents `kickoff demo --real-agents` picks from: those installed and keyed (bot.demo.run)."""

CALC_PY: Final = '''"""A tiny calculator."""


def add(a: int, b: int) -> int:
    """The sum of a and b."""
    return a - b


def mul(a: int, b: int) -> int:
    """The product of a and b."""
    return a * b
'''

TEST_CALC_PY: Final = '''import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_mul(self) -> None:
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
'''

README_MD: Final = "# calculator\n\nA tiny calculator, and the sample repository of `kickoff demo`.\n"

CI_COMMAND: Final = (sys.executable, "-m", "unittest", "-q")
"""The simulated CI: the standard library's test runner, so the sample needs nothing installed."""


def agent_command(agent: str) -> list[str]:
    """The argv of a scripted agent: this interpreter running a module shipped in `bot/demo/agents/`."""
    return [sys.executable, "-m", f"bot.demo.agents.{SCRIPTED_AGENTS[agent]}", "{workdir}", "{prompt_file}"]


def kickoff_yml(agents: Sequence[str] = tuple(SCRIPTED_AGENTS), *, real: bool = False) -> str:
    """The sample's `.github/kickoff.yml`: three agents on `fix`, auto merge, a review window of one.

    Written as JSON (a subset of YAML), so the interpreter's path needs no quoting rules of its own.
    """
    specs: dict[str, object] = {
        name: ({} if real else {"adapter": "command", "command": agent_command(name)}) for name in agents
    }
    config = {
        "agents": specs,
        "tasks": {"fix": {"agents": list(agents), "attempts": 1}},
        "limits": {"max_parallel_runs": 3, "max_open_prs": 5, "run_timeout_minutes": 10 if real else 2},
        "queue": {"merge": "auto", "review_window": 1, "merge_method": "squash", "update_method": "merge"},
    }
    return json.dumps(config, indent=2) + "\n"


def files(agents: Sequence[str] = tuple(SCRIPTED_AGENTS), *, real: bool = False) -> dict[str, str]:
    """Every file of the sample's initial commit."""
    return {
        "README.md": README_MD,
        "calc.py": CALC_PY,
        "test_calc.py": TEST_CALC_PY,
        ".github/kickoff.yml": kickoff_yml(agents, real=real),
    }
