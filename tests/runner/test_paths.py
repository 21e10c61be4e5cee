"""Protected-path globs: `*` stays within a directory, `**` spans directories, a directory protects its files."""

from __future__ import annotations

import pytest

from bot.runner.paths import matches, protected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        (".github/workflows/**", ".github/workflows/ci.yml", True),
        (".github/workflows/**", ".github/workflows/nested/deep.yaml", True),
        (".github/workflows/**", ".github/workflowsX/ci.yml", False),
        (".github/workflows/**", ".github/dependabot.yml", False),
        (".github/workflows/", ".github/workflows/ci.yml", True),
        (".github/workflows", ".github/workflows/ci.yml", True),
        (".github/kickoff.yml", ".github/kickoff.yml", True),
        (".github/kickoff.yml", ".github/kickoff.yml.bak", False),
        (".github/kickoff.yml", "docs/.github/kickoff.yml", False),
        ("/.github/kickoff.yml", ".github/kickoff.yml", True),
        ("*.pem", "key.pem", True),
        ("*.pem", "certs/key.pem", False),
        ("**/*.pem", "certs/deep/key.pem", True),
        ("**/*.pem", "key.pem", True),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/pkg/app.py", False),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/a/b/test_a.py", True),
        ("secrets/?.txt", "secrets/a.txt", True),
        ("secrets/?.txt", "secrets/ab.txt", False),
        ("config/[ab].yml", "config/a.yml", True),
        ("config/[!ab].yml", "config/a.yml", False),
        ("config/[!ab].yml", "config/c.yml", True),
        ("a+b(c).txt", "a+b(c).txt", True),
        ("**", "anything/at/all", True),
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_protected_keeps_order_and_ignores_blank_patterns() -> None:
    paths = ["src/app.py", ".github/workflows/ci.yml", ".github/kickoff.yml", "README.md"]
    assert protected(paths, ["", ".github/workflows/**", ".github/kickoff.yml"]) == [
        ".github/workflows/ci.yml", ".github/kickoff.yml"
    ]
    assert protected(paths, []) == []
