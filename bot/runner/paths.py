"""Protected paths: glob patterns over repository paths, where `*` stays within a directory and `**` spans them."""

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
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Whether `path` (or a directory it is in) matches `pattern`.

    So `.github/workflows/**`, `.github/workflows/` and `.github/workflows` all protect every file under that
    directory; `*.pem` matches only at the top level, `**/*.pem` at any depth.
    """
    regex = _compile(pattern)
    candidate = PurePosixPath(path)
    return any(regex.match(str(p)) for p in (candidate, *candidate.parents) if str(p) != ".")


def protected(paths: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The paths that match any of the patterns, in order."""
    patterns = [p for p in patterns if p.strip()]
    return [path for path in paths if any(matches(pattern, path) for pattern in patterns)]
