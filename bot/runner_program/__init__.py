"""The runner program (`kickoff run-agent --spec FILE`): prepare (trusted), agent and verify (untrusted), publish.

The same program runs on every backend (a local subprocess, a GitHub Actions job, a Kubernetes pod, a Fly Machine);
the protocol it speaks is bot.runspec, documented in docs/runners.md.
"""

from __future__ import annotations

from bot.runner_program.program import EXIT_BAD_INPUT, EXIT_OK, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "main"]
