"""run_process in-process: deadlines, cancellation, whole-tree kills, bounded output."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.agents.base import streamed_cost
from bot.runner_program.process import CostMeter, ProcessResult, TailBuffer, run_process
from tests.runner_program.support import process_gone

ENV = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}


def run(code: str, tmp_path: Path, timeout: float = 10, cancel: threading.Event | None = None,
        limit: int = 1024, env: dict[str, str] | None = None) -> tuple[ProcessResult, TailBuffer, TailBuffer]:
    out, both = TailBuffer(1 << 20), TailBuffer(limit)
    result = run_process([sys.executable, "-c", code], cwd=tmp_path, env=env or ENV, timeout=timeout,
                         cancel=cancel or threading.Event(), stdout=(out, both), stderr=(both,), grace=1)
    return result, out, both


def test_exit_code_and_both_streams(tmp_path: Path) -> None:
    result, out, both = run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(7)", tmp_path)
    assert result.exit_code == 7
    assert out.text() == "out\n"
    assert sorted(both.text().split()) == ["err", "out"]


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import subprocess, sys, time, pathlib\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(str(c.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result, _, _ = run(code, tmp_path, timeout=1.5)
    assert result.timed_out
    assert result.exit_code is None
    assert time.monotonic() - started < 10
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(child)


def test_leftover_background_processes_are_killed_when_the_program_exits(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import subprocess, sys, pathlib\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(str(c.pid))\n"
    )
    started = time.monotonic()
    result, _, _ = run(code, tmp_path)
    assert result.exit_code == 0
    assert time.monotonic() - started < 10, "a background child holding the pipes must not block the runner"
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(child)


def test_a_process_that_left_the_session_with_an_empty_environment_is_killed(tmp_path: Path) -> None:
    """Neither its process group nor its environment finds it: it was reparented to us, the subreaper."""
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, pathlib\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True,\n"
        "                     env={}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"pathlib.Path({str(pids)!r}).write_text(str(c.pid))\n"
        "os._exit(0)\n"  # not waiting: the child is orphaned at once
    )
    result, _, _ = run(code, tmp_path)
    assert result.exit_code == 0
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(child)


def test_the_callers_other_children_are_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        result, _, _ = run("print('done')", tmp_path)
        assert result.exit_code == 0
        assert bystander.poll() is None, "a child this process had before the program started is not the program's"
    finally:
        bystander.kill()
        bystander.wait()


def test_cancel_stops_the_program(tmp_path: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        result, _, _ = run("import time\ntime.sleep(60)", tmp_path, timeout=60, cancel=cancel)
    finally:
        timer.cancel()
    assert result.cancelled
    assert not result.timed_out


def test_a_missing_program_is_a_start_error(tmp_path: Path) -> None:
    result = run_process(["definitely-not-a-program-xyz"], cwd=tmp_path, env=ENV, timeout=5,
                         cancel=threading.Event(), stdout=(), stderr=())
    assert result.exit_code is None
    assert result.start_error is not None
    assert result.start_error.startswith("definitely-not-a-program-xyz")


def test_tail_buffer_keeps_only_the_tail() -> None:
    buffer = TailBuffer(100)
    for index in range(1000):
        buffer.write(f"line {index}\n".encode())
    text = buffer.text()
    assert text.endswith("line 999\n")
    assert text.startswith("[… ")
    body = text.split("\n", 1)[1]
    assert len(body) <= 100
    assert body.startswith("line ")  # starts at a line boundary
    assert buffer.total == sum(len(f"line {i}\n") for i in range(1000))
    assert buffer.text(note=False).endswith("line 999\n")


def test_tail_buffer_memory_stays_bounded() -> None:
    buffer = TailBuffer(1000)
    chunk = b"x" * 4096
    for _ in range(10_000):
        buffer.write(chunk)
    assert len(buffer._data) <= 2 * 1000 + 4096
    assert buffer.dropped == 10_000 * 4096 - 1000


def test_the_cost_meter_reads_only_new_output_and_a_cost_line_split_across_reads() -> None:
    output = TailBuffer(64 * 1024)
    meter = CostMeter(limit=1.0, output=output, read=streamed_cost)
    output.write(b'{"usage": {"cost_usd": 0.7}}\n')
    assert (meter.over(), meter.cost) == (None, 0.7)
    output.write(b'{"usage": {"cost_u')
    assert meter.over() is None
    output.write(b'sd": 1.25}}\n')
    assert meter.over() == 1.25
    output.write(b"still working\n")  # the cost stays what it last was
    assert meter.over() == 1.25


def test_a_program_over_its_budget_is_stopped_but_not_timed_out(tmp_path: Path) -> None:
    out = TailBuffer(64 * 1024)
    script = ("import json, time\nfor cost in (0.5, 2.0):\n    print(json.dumps({'usage': {'cost_usd': cost}}), "
              "flush=True)\n    time.sleep(0.1)\ntime.sleep(60)\n")
    started = time.monotonic()
    result = run_process([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=60,
                         cancel=threading.Event(), stdout=(out,), stderr=(out,),
                         meter=CostMeter(limit=1.0, output=out, read=streamed_cost))
    assert (result.over_budget, result.timed_out, result.cancelled, result.exit_code) == (2.0, False, False, None)
    assert time.monotonic() - started < 20
