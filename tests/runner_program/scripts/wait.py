"""Agent: writes its pid and a child's to argv[1], then waits to be cancelled."""

import os
import subprocess
import sys
import time
from pathlib import Path

child = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(600)"])
Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}\n")
time.sleep(600)
