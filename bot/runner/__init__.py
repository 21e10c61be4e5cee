"""The runner program (`kickoff run-agent --spec FILE`): prepare (trusted), agent and verify (untrusted), publish.

The same program runs on every backend (a local subprocess, a GitHub Actions job, a Kubernetes pod, a Fly Machine);
the protocol it speaks is bot.runs.spec, documented in docs/runners.md.
"""

from __future__ import annotations

from bot.runner.program import EXIT_BAD_INPUT, EXIT_OK, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "main"]
