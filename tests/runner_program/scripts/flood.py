"""Agent: prints argv[1] megabytes, then records the runner's (its parent's) peak memory in argv[2]."""

import os
import sys
from pathlib import Path

megabytes = int(sys.argv[1])
line = (b"x" * 1023) + b"\n"
chunk = line * 1024
out = sys.stdout.buffer
for _ in range(megabytes):
    out.write(chunk)
out.write(b"THE END\n")
out.flush()
status = Path(f"/proc/{os.getppid()}/status").read_text()
peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
Path(sys.argv[2]).write_text(peak.split()[1])  # kB
