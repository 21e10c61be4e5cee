"""The agent phase's sandbox: bubblewrap (`bwrap`) around the agent and the verify command.

A sandboxed program gets new user, PID, IPC, UTS (and, where possible, cgroup) namespaces with no capabilities and
no way to make further user namespaces; its own /proc (it sees only its own processes), /dev and /tmp; a cleared
environment holding only what the runner passes; the agent's own directories read-write at their real paths; the
system directories, the PATH directories and the program's own installation read-only; and nothing else of the host.
Paths the runner names as hidden (Kickoff's `.env`, its database, its key, the runner's workspace) are masked even
under a bound directory, and an extra directory that would reveal one is not bound at all. The host's network is
kept unless the agent says `network: none`. When the namespace's init dies, the kernel kills every process in it.

The options reach bwrap through a memfd (`--args`), so the environment (an agent's API key) never shows in argv.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot import messages
from bot.runspec import Network, SandboxMode

DEFAULT_BWRAP: Final = "bwrap"
BWRAP_ENV: Final = "KICKOFF_BWRAP"
"""The runner's environment variable naming the bwrap program (default: `bwrap` on the runner's PATH)."""
PROBE_TIMEOUT_SECONDS: Final = 30.0
SYSTEM_DIRS: Final = ("/usr", "/etc", "/opt")
MERGED_USR: Final = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Symlinks into /usr on a merged-usr system (recreated as symlinks), or real directories (bound read-only)."""
PREFIX_PARTS: Final = ("lib", "lib64", "pyvenv.cfg")
"""What a `bin` directory's installation prefix needs at run time: a venv's pyvenv.cfg, an interpreter's or an npm
prefix's lib/. Never the prefix itself (~/.local, ~/.cargo hold other things)."""
SECRET_NAMES: Final = (".env",)
"""An extra directory holding one of these directly is never bound."""
HOSTNAME: Final = "kickoff-sandbox"


@dataclass(frozen=True)
class SandboxPolicy:
    """What the sandbox shows. Paths are bound at their real (resolved) absolute paths."""

    writable: tuple[Path, ...]
    """Read-write: the agent's copy, its HOME and TMPDIR."""
    readable: tuple[Path, ...] = ()
    """Read-only extras: the prompt file, Kickoff's own package."""
    hidden: tuple[Path, ...] = ()
    """Never visible, even under a bound directory: Kickoff's secrets, the runner's own workspace."""
    network: Network = "host"
    bwrap: str = DEFAULT_BWRAP


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str | None = None  # why the sandbox does not work, in one line


class SandboxError(Exception):
    """The sandbox cannot be built for this program; the message says why in one line."""


def find_bwrap(bwrap: str, path: str | None = None) -> str | None:
    """The bwrap program's absolute path, or None when it is not installed (or not executable)."""
    if "/" in bwrap:
        return bwrap if os.path.isfile(bwrap) and os.access(bwrap, os.X_OK) else None
    return shutil.which(bwrap, path=path if path is not None else os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=8)
def _supports(bwrap: str, option: str) -> bool:
    """Whether this bwrap knows `option` (--disable-userns came with 0.8)."""
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in done.stdout or option in done.stderr


def resolve_program(program: str, env: Mapping[str, str], cwd: Path) -> Path | None:
    """Where `program` is, as execvp with `env`'s PATH would find it (not resolving symlinks)."""
    if "/" in program:
        candidate = Path(program) if program.startswith("/") else cwd / program
        return Path(os.path.abspath(candidate)) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    for entry in env.get("PATH", os.defpath).split(os.pathsep):
        if not entry:
            continue
        candidate = Path(entry) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return Path(os.path.abspath(candidate))
    return None


def _interpreter(program: Path, env: Mapping[str, str]) -> Path | None:
    """A script's `#!` interpreter (through `/usr/bin/env NAME`), so a venv's pytest brings its python."""
    try:
        with program.open("rb") as file:
            head = file.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        return resolve_program(names[0], env, Path("/")) if names else None
    return Path(words[0])


def _chain(program: Path) -> list[Path]:
    """The program and every symlink hop to its real file (a venv's python → the interpreter it points at)."""
    hops = [program]
    current = program
    for _ in range(40):
        if not current.is_symlink():
            break
        target = Path(os.readlink(current))
        current = Path(os.path.normpath(current.parent / target))
        hops.append(current)
    real = program.resolve()
    if real not in hops:
        hops.append(real)
    return hops


def program_dirs(program: Path, env: Mapping[str, str]) -> list[Path]:
    """The directories a program needs: those of each hop to it and to its interpreter, with their prefix's lib/."""
    programs = [program]
    interpreter = _interpreter(program.resolve(), env)
    if interpreter is not None:
        programs.append(interpreter)
    dirs: list[Path] = []
    for item in programs:
        for hop in _chain(item):
            dirs.append(hop.parent)
    return dirs


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _system_roots() -> list[Path]:
    return [Path(name) for name in SYSTEM_DIRS if os.path.isdir(name) and not os.path.islink(name)]


def _with_prefix(directory: Path) -> list[Path]:
    """`directory`, and for a `bin` directory the run-time parts of its installation prefix."""
    found = [directory]
    if directory.name in ("bin", "sbin"):
        found += [directory.parent / part for part in PREFIX_PARTS if (directory.parent / part).exists()]
    return found


def _reveals(candidate: Path, hidden: Sequence[Path]) -> bool:
    if candidate.is_dir() and any((candidate / name).exists() for name in SECRET_NAMES):
        return True
    return any(_within(secret, candidate) for secret in hidden)


def extra_binds(policy: SandboxPolicy, candidates: Iterable[Path]) -> list[Path]:
    """The read-only extras actually bound: real paths, outside the system directories, revealing nothing hidden."""
    hidden = [_real(path) for path in policy.hidden]
    covered = [*_system_roots(), *(_real(path) for path in policy.writable)]
    chosen: list[Path] = []
    for raw in candidates:
        for path in _with_prefix(Path(os.path.abspath(raw))):
            if not path.exists():
                continue
            real = _real(path)
            if real == Path("/") or any(_within(real, root) for root in [*covered, *chosen]):
                continue
            if _reveals(real, hidden):
                continue
            chosen = [kept for kept in chosen if not _within(kept, real)]
            chosen.append(real)
    return chosen


def bwrap_args(policy: SandboxPolicy, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
               bwrap: str) -> list[str]:
    """bwrap's arguments (everything after the program name) for `argv` run in `cwd` with `env`.

    `argv[0]` is resolved on `env`'s PATH first; SandboxError when it cannot be found.
    """
    options, command = _split_args(policy, argv, env, cwd, bwrap)
    return [*options, *command]


def _split_args(policy: SandboxPolicy, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                bwrap: str) -> tuple[list[str], list[str]]:
    program = resolve_program(argv[0], env, cwd)
    if program is None:
        raise SandboxError(f"{argv[0]}: No such file or directory")
    args = ["--unshare-user", "--uid", str(os.getuid()), "--gid", str(os.getgid())]
    if _supports(bwrap, "--disable-userns"):
        args.append("--disable-userns")
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", HOSTNAME, "--unshare-cgroup-try"]
    if policy.network == "none":
        args.append("--unshare-net")
    # No --new-session: the runner starts bwrap in a session of its own already (no controlling terminal, so nothing
    # to inject input into), whose autogroup it has put at the lowest CPU priority (bot.runner_program.priority);
    # another setsid would give the sandbox a fresh autogroup at full weight.
    args += ["--die-with-parent", "--cap-drop", "ALL"]

    systems = _system_roots()
    for root in systems:
        args += ["--ro-bind", str(root), str(root)]
    for name in MERGED_USR:
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    resolv = _real(Path("/etc/resolv.conf"))
    if resolv.is_file() and not any(_within(resolv, root) for root in systems):
        args += ["--ro-bind", str(resolv), str(resolv)]  # e.g. systemd-resolved's stub under /run
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - the sandbox's own, empty /tmp

    # Masks first, so what is bound after them (this run's directories) shows through.
    for secret in (_real(path) for path in policy.hidden):
        if not any(_within(secret, root) for root in systems):
            continue  # not under anything bound: invisible anyway
        if secret.is_dir():
            args += ["--tmpfs", str(secret)]
        elif secret.exists():
            args += ["--ro-bind", os.devnull, str(secret)]

    path_dirs = [Path(entry) for entry in env.get("PATH", "").split(os.pathsep) if entry.startswith("/")]
    wanted = [*path_dirs, *program_dirs(program, env), *(p for p in policy.readable if p.is_dir())]
    for directory in extra_binds(policy, wanted):
        args += ["--ro-bind", str(directory), str(directory)]
    for writable in policy.writable:
        real = _real(writable)
        args += ["--bind", str(real), str(real)]
    for readable in policy.readable:
        if readable.is_file():
            real = _real(readable)
            args += ["--ro-bind", str(real), str(real)]

    args.append("--clearenv")
    for name, value in env.items():
        args += ["--setenv", name, value]
    args += ["--chdir", str(_real(cwd))]
    return args, ["--", str(program), *argv[1:]]


@dataclass(frozen=True)
class Prepared:
    """A bwrap command ready for Popen: its argv and the memfd holding its options (pass it, then close it)."""

    argv: list[str]
    fd: int


def prepare(policy: SandboxPolicy, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Prepared:
    """The bwrap command for `argv`; SandboxError when bwrap or the program is missing."""
    bwrap = find_bwrap(policy.bwrap)
    if bwrap is None:
        raise SandboxError(messages.SANDBOX_NO_BWRAP.format(bwrap=policy.bwrap))
    options, command = _split_args(policy, argv, env, cwd, bwrap)  # bwrap takes the command from its real argv
    data = b"".join(arg.encode() + b"\0" for arg in options)
    fd = os.memfd_create("kickoff-bwrap-args", 0)  # not inheritable until Popen passes it
    try:
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return Prepared([bwrap, "--args", str(fd), *command], fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def probe(policy: SandboxPolicy, program: Sequence[str] = ("true",), timeout: float = PROBE_TIMEOUT_SECONDS
          ) -> ProbeResult:
    """Run `program` in exactly this sandbox; ok, or why it does not work (bwrap missing, namespaces refused)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    cwd = policy.writable[0] if policy.writable else Path("/")
    try:
        prepared = prepare(policy, program, env, cwd)
    except SandboxError as exc:
        return ProbeResult(False, str(exc))
    try:
        done = subprocess.run(prepared.argv, env={}, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              pass_fds=(prepared.fd,), check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, messages.SANDBOX_PROBE_TIMEOUT.format(seconds=round(timeout)))
    except OSError as exc:
        return ProbeResult(False, messages.SANDBOX_NO_BWRAP.format(bwrap=f"{policy.bwrap} ({exc.strerror})"))
    finally:
        os.close(prepared.fd)
    if done.returncode == 0:
        return ProbeResult(True)
    lines = [line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    detail = lines[0] if lines else f"exit code {done.returncode}"
    return ProbeResult(False, messages.SANDBOX_REFUSED.format(detail=detail[:300]))


def probe_here(bwrap: str = DEFAULT_BWRAP, network: Network = "host") -> ProbeResult:
    """Kickoff's start-up check: the same sandbox as a run's, on a throw-away directory."""
    with tempfile.TemporaryDirectory(prefix="kickoff-sandbox-probe-") as tmp:
        return probe(SandboxPolicy(writable=(Path(tmp),), network=network, bwrap=bwrap))




def workspace_policy(*, agent: Path, repo: Path, home: Path, tmp: Path, prompt: Path, root: Path,
                     hidden: Sequence[str | Path] = (), network: Network = "host", bwrap: str = DEFAULT_BWRAP,
                     ) -> SandboxPolicy:
    """The agent phase's sandbox for a runner workspace (bot.runner_program.program.Workspace's directories).

    Read-write: `agent` (everything the agent phase may see) and, where they are not inside it, `repo`, `home` and
    `tmp`. Read-only: the prompt and Kickoff's own package (the demo's scripted agents import it). Hidden: the
    workspace `root` (the private clone, the spec, the result, the runner's log) and `hidden` (Kickoff's secrets).
    """
    import bot  # the package the runner runs from

    writable: list[Path] = []
    for path in (agent, repo, home, tmp):
        if path.is_dir() and not any(_within(path, kept) for kept in writable):
            writable.append(path)
    package = Path(bot.__file__).resolve().parent
    return SandboxPolicy(writable=tuple(writable), readable=(prompt, package),
                         hidden=(root, *(Path(path) for path in hidden)), network=network, bwrap=bwrap)


@dataclass(frozen=True)
class Decision:
    """Whether a run's programs are sandboxed: `policy` None means unsandboxed, and `reason` says why."""

    policy: SandboxPolicy | None
    reason: str | None = None
    refused: bool = False  # mode `required` and the sandbox does not work: the run must fail


def decide(mode: SandboxMode, policy: SandboxPolicy) -> Decision:
    """Probe `policy` (unless `off`): use it, fall back (`auto`), or refuse (`required`)."""
    if mode == "off":
        return Decision(None, messages.SANDBOX_OFF)
    result = probe(policy)
    if result.ok:
        return Decision(policy)
    return Decision(None, result.reason, refused=mode == "required")


__all__ = [
    "BWRAP_ENV",
    "DEFAULT_BWRAP",
    "Decision",
    "Network",
    "Prepared",
    "ProbeResult",
    "SandboxError",
    "SandboxMode",
    "SandboxPolicy",
    "bwrap_args",
    "decide",
    "find_bwrap",
    "prepare",
    "probe",
    "probe_here",
    "program_dirs",
    "resolve_program",
    "workspace_policy",
]
