"""Scripted agent `rewrite`: rewrites `add()` from scratch."""

from __future__ import annotations

import re

from bot.demo.agents._common import report, think, workdir

NEW_ADD = '''def add(a: int, b: int) -> int:
    """The sum of a and b (rewritten: the old body subtracted)."""
    total = a
    total += b
    return total
'''


def main() -> None:
    calc = workdir() / "calc.py"
    print("Rewriting add() from its docstring.")
    think(1.6)
    text = calc.read_text()
    rewritten, count = re.subn(r"def add\(.*?\n(?=\n\ndef |\Z)", NEW_ADD, text, count=1, flags=re.S)
    if count != 1:
        raise SystemExit("calc.py has no add() to rewrite")
    calc.write_text(rewritten)
    report("Rewrite `add()`: accumulate the operands instead of subtracting them.", input_tokens=1204,
           output_tokens=151)


if __name__ == "__main__":
    main()
