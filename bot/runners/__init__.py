"""Runner backends: where `kickoff run-agent` runs. `local` is embedded; the others start it elsewhere."""

from bot.runners.base import ExitHandler, RunnerBackend, RunnerError, RunnerExit
from bot.runners.local import LocalRunner

__all__ = ["ExitHandler", "LocalRunner", "RunnerBackend", "RunnerError", "RunnerExit"]
