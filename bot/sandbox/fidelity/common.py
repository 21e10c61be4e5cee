"""Where the vendored descriptions live, and the small definitions every part of the fidelity check shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

OPENAPI_DIR: Final = Path(__file__).resolve().parent.parent / "openapi"
REST_SUBSET_PATH: Final = OPENAPI_DIR / "rest-subset.json"
WEBHOOKS_SUBSET_PATH: Final = OPENAPI_DIR / "webhooks-subset.json"

# Path parameters whose values may contain "/" (file paths, git refs, branch and label names, the two sides
# of a compare); ``path`` may also be empty (``/contents/`` lists the root). Other parameters match one
# non-empty path segment.
GREEDY_PATH_PARAMS: Final = frozenset({"path", "ref", "branch", "name", "base", "head"})

HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

JSONDict = dict[str, Any]


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


NO_BODY: Final = _Absent()
