"""Protected-path globs: `*` stays within a directory, `**` spans directories, a directory protects its files."""

from __future__ import annotations

import pytest

from bot.runner_program.paths import matches, may_contain, protected


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


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        (".github/workflows/**", ".github/workflows", True),  # the directory itself, replaced by a link or a file
        (".github/workflows/", ".github/workflows", True),
        (".github/workflows/**", ".github/workflowsX", False),
        (".github/workflows/**", ".github", False),  # a parent only counts as a container (below)
        ("docs/**", "docs", True),
    ],
)
def test_a_directory_pattern_names_the_directory(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        (".github/workflows/**", ".github", True),
        (".github/workflows/**", ".git*", False),
        (".github/workflows/*.yml", ".github", True),
        (".github/kickoff.yml", ".github", True),
        (".github/kickoff.yml", "docs", False),
        ("src/**/test_*.py", "src/a", True),
        ("src/**/test_*.py", "lib", False),
        ("**/.gitattributes", "vendor/lib", False),
        (".gitmodules", "vendor", False),
        ("config/[ab]/x.yml", "config/a", True),
        ("config/[ab]/x.yml", "config/c", False),
    ],
)
def test_what_a_link_or_a_nested_repository_may_contain(pattern: str, path: str, expected: bool) -> None:
    assert may_contain(pattern, path) is expected


def test_a_link_where_a_protected_directory_would_be_is_protected() -> None:
    patterns = [".github/workflows/**", "**/.gitattributes"]
    changed = [".github", "docs/link", "src/app.py"]
    assert protected(changed, patterns, containers=[".github", "docs/link"]) == [".github"]
    assert protected(changed, patterns) == []  # as plain files, neither is protected
