"""Runner backends: where `kickoff run-agent` runs. `local` is embedded; the others start it elsewhere."""

from bot.runners.local import LocalRunner
from bot.runs.backend import ExitHandler, RunnerBackend, RunnerError, RunnerExit

__all__ = ["ExitHandler", "LocalRunner", "RunnerBackend", "RunnerError", "RunnerExit"]
