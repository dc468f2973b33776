"""/proc helpers against real processes: what they read is what the process is, and a
process that is gone reads as None, never as an exception."""

from __future__ import annotations

import subprocess
import sys
import time

from hostfs import (
    boot_time,
    clock_ticks,
    list_pids,
    read_cgroup,
    read_cmdline,
    read_comm,
    read_stat,
    start_time,
)

CHILD = (
    "import sys; open('/proc/self/comm', 'w').write('ri (x) y'); "
    "print(1, flush=True); sys.stdin.read()"
)


def test_live_then_gone_process() -> None:
    before = time.time()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "1\n"
    after = time.time()
    try:
        pid = child.pid
        assert pid in list_pids("/proc")
        stat = read_stat("/proc", pid)
        assert stat is not None and stat.comm == "ri (x) y" == read_comm("/proc", pid)
        started = start_time(stat, boot_time("/proc"), clock_ticks())
        # btime is whole seconds (truncated) and start ticks are 1/USER_HZ: allow 1 s + 1 tick.
        assert before - 1.0 - 1 / clock_ticks() <= started <= after + 1 / clock_ticks()
        assert read_cmdline("/proc", pid) == [sys.executable, "-c", CHILD]
        with open(f"/proc/{pid}/cgroup") as f:
            assert read_cgroup("/proc", pid) == f.read()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        child.stdout.close()
    assert read_stat("/proc", pid) is None
    assert read_cgroup("/proc", pid) is None
    assert read_comm("/proc", pid) is None
    assert read_cmdline("/proc", pid) is None
    assert pid not in list_pids("/proc")
