"""The runner's two credentials: read once from the environment, then kept out of every child's reach.

After reading them the runner removes them from its own environment and overwrites the original bytes of the
process's initial environment block, which /proc/PID/environ shows to any process of the same user (the agent
included). What is left is the value in this process's memory, handed to git (and its askpass helper) only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.logs import redact, register_secret
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET


@dataclass(frozen=True)
class Secrets:
    git_token: str | None
    run_secret: str | None

    def values(self) -> tuple[str, ...]:
        return tuple(value for value in (self.git_token, self.run_secret) if value)

    def redact(self, text: str, extra: Iterable[str] = ()) -> str:
        """bot.logs.redact plus the exact credential values (whatever their shape or length)."""
        values = sorted({*self.values(), *(v for v in extra if len(v) >= 8)}, key=len, reverse=True)
        return redact(text, values)


def take_secrets(environ: Mapping[str, str] | None = None) -> Secrets:
    """Read the credentials, register them for log redaction, and scrub them from this process's environment."""
    source = os.environ if environ is None else environ
    secrets = Secrets(git_token=source.get(ENV_GIT_TOKEN) or None, run_secret=source.get(ENV_RUN_SECRET) or None)
    for value in secrets.values():
        register_secret(value)
    if environ is None:
        scrub_environment((ENV_GIT_TOKEN, ENV_RUN_SECRET))
    return secrets


def scrub_environment(names: Iterable[str]) -> None:
    """Remove `names` from os.environ and zero their bytes in the initial environment block (Linux, best effort)."""
    names = list(names)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            _zero_initial_environment(names)
    for name in names:
        os.environ.pop(name, None)


def _zero_initial_environment(names: list[str]) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    prefixes = [f"{name}=".encode() for name in names]
    index = 0
    while True:
        address = environ[index]
        if not address:
            return
        entry = ctypes.string_at(address)
        for prefix in prefixes:
            if entry.startswith(prefix) and len(entry) > len(prefix):
                ctypes.memset(address + len(prefix), 0, len(entry) - len(prefix))
        index += 1
