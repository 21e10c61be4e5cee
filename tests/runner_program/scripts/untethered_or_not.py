"""A minimal runner: `untethered_or_not.py on|off WORKDIR PROGRAM...` runs PROGRAM through `run_process` (unsandboxed,
tethered or not) and waits; the test kills it with SIGKILL mid-run."""

import sys
import threading
from pathlib import Path

from bot.runner_program.process import TailBuffer, run_process

run_process(sys.argv[3:], cwd=Path(sys.argv[2]), env={"PATH": "/usr/bin:/bin"}, timeout=600,
            cancel=threading.Event(), stdout=[TailBuffer(1024)], stderr=[TailBuffer(1024)],
            tethered=sys.argv[1] == "on")
