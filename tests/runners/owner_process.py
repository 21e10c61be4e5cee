"""A stand-in for a Kickoff process that started local runners and is then killed: `python -m
tests.runners.owner_process ROOT LOG RUN_ID...` starts one fake runner per run id (each with a child, working for a
minute), prints `{run_id: ref}` as one JSON line, and waits to be killed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.runners.local import LocalRunner
from bot.runs.backend import RunnerExit
from tests.runners.test_local import SECRETS, spec
from tests.runs.support import FAKE_RUNNER


async def main(root: Path, log: Path, run_ids: list[int]) -> None:
    runner = LocalRunner(command=(sys.executable, str(FAKE_RUNNER)), workspace_root=root,
                         extra_env={"FAKE_RUNNER_LOG": str(log)})

    async def ignore(exit_: RunnerExit) -> None:
        return None

    runner.bind(ignore)
    refs = {run_id: await runner.start(spec(run_id, "child", "sleep=60"), SECRETS, deadline=600)
            for run_id in run_ids}
    print(json.dumps(refs), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), [int(arg) for arg in sys.argv[3:]]))
