"""End-to-end fixtures: the simulated GitHub and Kickoff running together (`bot.demo.harness`), as in the demo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo.harness import World, kickoff_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The pair, with the sample repository and Kickoff installed on it; fails the test on any fidelity violation."""
    async with kickoff_world(tmp_path) as built:
        await built.create_sample_repo()
        yield built
        violations = built.violations()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)
