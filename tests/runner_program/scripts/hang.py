"""Agent: never finishes. Starts a child that ignores SIGTERM and a grandchild that leaves the process group
(setsid), writes all their pids to argv[1], then sleeps."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

stubborn = subprocess.Popen([sys.executable, "-c",
                             "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"])
escaped = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(600)"], start_new_session=True)
Path(sys.argv[1]).write_text(f"{os.getpid()} {stubborn.pid} {escaped.pid}\n")
signal.signal(signal.SIGTERM, signal.SIG_DFL)
print("working…", flush=True)
time.sleep(600)
