"""Protected paths: glob patterns over repository paths, where `*` stays within a directory and `**` spans them.

A pattern protects a directory and what is in it, and the directory itself: something else standing where the
directory was (a file, a symbolic link, a nested repository) touches every path under it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import PurePosixPath


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    suffix = r"\Z"
    if pattern.endswith("/**"):
        pattern, suffix = pattern[:-3], r"(?:/.*)?\Z"  # `dir/**` also names `dir` itself
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole directories
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1)
            if end == -1:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + suffix, re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Whether `path` (or a directory it is in) matches `pattern`.

    So `.github/workflows/**`, `.github/workflows/` and `.github/workflows` all protect every file under that
    directory; `*.pem` matches only at the top level, `**/*.pem` at any depth.
    """
    regex = _compile(pattern)
    candidate = PurePosixPath(path)
    return any(regex.match(str(p)) for p in (candidate, *candidate.parents) if str(p) != ".")


def may_contain(pattern: str, path: str) -> bool:
    """Whether a path below `path` could match `pattern`: what a symbolic link or a nested repository standing at
    `path` touches (`.github` may contain `.github/workflows/**`, `src/a` may contain `src/**/*.pem`). A pattern
    that starts with `**` names no directory, so it is left to the exact match (else every link would count)."""
    parts = [part for part in pattern.strip().strip("/").split("/") if part]
    for index, component in enumerate(PurePosixPath(path).parts):
        if index >= len(parts):
            return False
        if "**" in parts[index]:
            return index > 0
        if not _compile(parts[index]).match(component):
            return False
    return len(PurePosixPath(path).parts) < len(parts)


def protected(paths: Iterable[str], patterns: Iterable[str], containers: Iterable[str] = ()) -> list[str]:
    """The paths that match any of the patterns, in order; a path in `containers` (a symbolic link or a gitlink)
    also counts when something under it could match."""
    patterns = [p for p in patterns if p.strip()]
    holders = set(containers)
    return [path for path in paths
            if any(matches(pattern, path) or (path in holders and may_contain(pattern, path))
                   for pattern in patterns)]
