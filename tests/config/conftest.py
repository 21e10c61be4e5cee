"""A fake of the loader's `fetch` seam: files per repository, with git-like blob shas and a call log."""

from __future__ import annotations

import hashlib

import pytest

from bot.config.loader import CONFIG_PATH, ConfigLoader


class FakeRepos:
    """Files on default branches, keyed by (owner, repo, path); records every fetch."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], str] = {}
        self.calls: list[tuple[str, str, str]] = []

    def put(self, owner_repo: str, text: str, path: str = CONFIG_PATH) -> None:
        owner, repo = owner_repo.split("/")
        self.files[(owner, repo, path)] = text

    async def fetch(self, owner: str, repo: str, path: str) -> tuple[str, str] | None:
        self.calls.append((owner, repo, path))
        text = self.files.get((owner, repo, path))
        if text is None:
            return None
        return text, hashlib.sha1(f"blob {len(text.encode())}\0{text}".encode()).hexdigest()  # noqa: S324


@pytest.fixture
def repos() -> FakeRepos:
    return FakeRepos()


@pytest.fixture
def loader() -> ConfigLoader:
    return ConfigLoader()
