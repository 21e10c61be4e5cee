"""Scripted agent `operator`: the smallest fix, `a - b` becomes `a + b`."""

from __future__ import annotations

from bot.demo.agents._common import report, think, workdir


def main() -> None:
    calc = workdir() / "calc.py"
    print("Reading calc.py: add() subtracts instead of adding.")
    think(1.0)
    text = calc.read_text()
    if "return a - b" not in text:
        raise SystemExit("calc.py does not contain the bug this agent fixes")
    calc.write_text(text.replace("return a - b", "return a + b", 1))
    print("Changed the operator in add().")
    report("Fix `add()`: it subtracted `b` instead of adding it (one operator).", input_tokens=812, output_tokens=64)


if __name__ == "__main__":
    main()
