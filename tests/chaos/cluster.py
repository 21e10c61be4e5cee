"""Process control for the chaos test: real `kickoff serve` / `kickoff worker` processes against the sandbox.

The GitHub simulator (`bot.sandbox`) runs in the test's process, on its own engine thread, as in `bot.demo.harness`;
Kickoff runs as real processes, each started with `python -m bot ...`, its settings in its environment. The App's
webhook URL is a small TCP proxy (`Proxy`) in front of the web replicas: each connection goes to a replica that
accepts it, and while none does (all killed, a restart under way) the proxy keeps trying for a while, so the
simulator's deliveries keep flowing through a kill. Each incarnation of each process writes its own log file;
`Cluster.report()` gives their tails for a failure message.

    cluster = Cluster(root, sandbox, github_url, creds, database_url, env={...})
    cluster.add("web-1", "serve", "--no-worker"); cluster.add("worker-1", "worker")
    cluster.start_all(); cluster.kill("web-1"); cluster.start("web-1")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bot.sandbox import AppCredentials

ROOT: Final = Path(__file__).resolve().parents[2]
WEBHOOK_PATH: Final = "/api/github/webhooks"
LOG_TAIL_CHARS: Final = 3000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proxy:
    """A TCP proxy on a loopback port, on a thread of its own: each connection is piped to the first backend (in
    turn) that accepts it; with none up, it keeps trying for `wait_seconds`, then drops the connection (the
    simulator counts that as a failed attempt and retries)."""

    def __init__(self, backends: Callable[[], list[int]], *, wait_seconds: float = 8.0) -> None:
        self._backends = backends
        self._wait = wait_seconds
        self._turn = 0
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)

    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(10)
        return self.port

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        deadline = time.monotonic() + self._wait
        while time.monotonic() < deadline:
            ports = self._backends()
            for i in range(len(ports)):
                port = ports[(self._turn + i) % len(ports)]
                try:
                    pair = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
                except (OSError, TimeoutError):
                    continue
                self._turn += 1
                return pair
            await asyncio.sleep(0.05)
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        upstream = await self._connect()
        if upstream is None:
            self._open.discard(writer)
            writer.close()
            return
        up_reader, up_writer = upstream
        self._open.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open.discard(writer)
            self._open.discard(up_writer)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._open):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if self._server is not None:
                await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_closed():
            self._loop.close()


@dataclass
class KickoffProcess:
    """One named Kickoff process (`serve`, `serve --no-worker` or `worker`), restartable; one log per start."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    logs: Path
    port: int | None = None  # web processes only
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_files: list[Path] = field(default_factory=list)

    @property
    def web(self) -> bool:
        return self.port is not None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        path = self.logs / f"{self.name}.{self.starts}.log"
        self.log_files.append(path)
        argv = [sys.executable, "-m", "bot", *self.args]
        if self.port is not None:
            argv += ["--port", str(self.port)]
        with path.open("wb") as log:
            # Its own session: a kill of this process is a kill of this process only (its runners live on).
            self.popen = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.logs, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """`kill -9` of the process itself (not its group: what it started is left as a crash leaves it)."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds: the end of the test."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(8)
        except subprocess.TimeoutExpired:
            self.kill()

    def ready(self) -> bool:
        if not self.alive():
            return False
        if self.port is None:
            return True
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:  # a start takes seconds on a loaded 2-core machine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {timeout:g}s:\n{self.tail()}")

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        if not self.log_files:
            return "(never started)"
        text = self.log_files[-1].read_text(errors="replace")
        return text[-chars:]

    def log_text(self) -> str:
        """Every incarnation's log, in order."""
        return "".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.log_files if p.exists())


def kickoff_env(
    *,
    github_url: str,
    public_url: str,
    creds: AppCredentials,
    database_url: str,
    workspaces: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every Kickoff process: nothing of the caller's KICKOFF_*/GITHUB_* settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KICKOFF_", "GITHUB_", "DATABASE_URL"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "APP_ID": str(creds.app_id),
        "PRIVATE_KEY": creds.private_key_pem,
        "WEBHOOK_SECRET": creds.webhook_secret or "",
        "GITHUB_API_URL": github_url,
        "DATABASE_URL": database_url,
        "PUBLIC_URL": public_url,
        "KICKOFF_RUNNER": "local",
        "KICKOFF_CLONE_URL": f"{github_url}/{{repo}}.git",
        "KICKOFF_WORKSPACE_DIR": str(workspaces),
        "KICKOFF_PLUGINS": "",
        "LOG_LEVEL": "INFO",
    })
    env.update(extra or {})
    return env


class Cluster:
    """Named Kickoff processes sharing one database and one webhook URL (the proxy's)."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.processes: dict[str, KickoffProcess] = {}
        self.proxy = Proxy(self._web_ports)
        self.kills: list[tuple[float, str, str]] = []  # (monotonic time, process, moment)

    def _web_ports(self) -> list[int]:
        return [p.port for p in self.processes.values() if p.port is not None]

    def start_proxy(self) -> str:
        """Start the proxy; returns the webhook URL to register with the App."""
        port = self.proxy.start()
        return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

    def add(self, name: str, *args: str) -> KickoffProcess:
        port = free_port() if args[0] == "serve" else None
        process = KickoffProcess(name, tuple(args), dict(self.env), self.logs, port)
        self.processes[name] = process
        return process

    def __getitem__(self, name: str) -> KickoffProcess:
        return self.processes[name]

    def start(self, name: str, *, wait: bool = True) -> None:
        self.processes[name].start()
        if wait:
            self.processes[name].wait_ready()

    def start_all(self) -> None:
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready()

    def kill(self, name: str, moment: str) -> None:
        self.processes[name].kill()
        self.kills.append((time.monotonic(), name, moment))

    def live_pids(self) -> set[int]:
        return {p.pid for p in self.processes.values() if p.alive() and p.pid is not None}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) of each live process so far."""
        out: dict[str, float] = {}
        ticks = os.sysconf("SC_CLK_TCK")
        for name, process in self.processes.items():
            if process.alive() and process.pid is not None:
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                    out[name] = round((int(fields[11]) + int(fields[12])) / ticks, 1)
        return out

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.proxy.close()

    def report(self, names: Iterable[str] | None = None) -> str:
        lines = [f"kills: {[(name, moment) for _, name, moment in self.kills]}"]
        for name in names or self.processes:
            process = self.processes[name]
            lines.append(f"=== {name} (starts: {process.starts}, alive: {process.alive()}), last log tail:")
            lines.append(process.tail())
        return "\n".join(lines)


def processes_under(root: Path, exclude: set[int]) -> dict[int, str]:
    """Processes of this user that name `root` in their argv, working directory or environment (a runner, its
    agent, their children), except `exclude` and the test process's own children (the simulator's git and CI):
    pid → argv."""
    mark = str(root).encode()
    me = os.getpid()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in exclude or pid == me:
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            if ppid == me or state == "Z":
                continue
            argv = (entry / "cmdline").read_bytes()
            hit = mark in argv
            if not hit:
                with contextlib.suppress(OSError):
                    hit = mark in (entry / "environ").read_bytes()
            if not hit:
                with contextlib.suppress(OSError):
                    hit = str(root) in os.readlink(entry / "cwd")
        except (OSError, ValueError, IndexError):
            continue
        if hit:
            found[pid] = argv.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILL each of these processes (the ones this test started and left behind), by pid."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


__all__ = ["Cluster", "KickoffProcess", "Proxy", "free_port", "kickoff_env", "kill_pids", "processes_under"]
