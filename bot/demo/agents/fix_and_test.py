"""Scripted agent `fix-and-test`: fixes the operator and adds a regression test."""

from __future__ import annotations

from bot.demo.agents._common import report, think, workdir

NEW_TEST = '''
    def test_add_negative(self) -> None:
        self.assertEqual(add(-2, 3), 1)
'''


def main() -> None:
    root = workdir()
    calc, tests = root / "calc.py", root / "test_calc.py"
    print("Fixing add() and adding a regression test.")
    think(2.2)
    calc.write_text(calc.read_text().replace("return a - b", "return a + b", 1))
    text = tests.read_text()
    anchor = "    def test_mul(self)"
    if anchor not in text:
        raise SystemExit("test_calc.py has no test_mul to add a test before")
    tests.write_text(text.replace(anchor, NEW_TEST.lstrip("\n") + "\n" + anchor, 1))
    report("Fix `add()` and add `test_add_negative`, so the bug cannot come back.", input_tokens=1530,
           output_tokens=233)


if __name__ == "__main__":
    main()
