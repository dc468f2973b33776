"""/proc helpers against real processes: what they read is what the process is, and a
process that is gone reads as None, never as an exception."""

from __future__ import annotations

import subprocess
import sys

from hostfs import (
    boot_id,
    clock_ticks,
    list_pids,
    now,
    read_cgroup,
    read_cmdline,
    read_comm,
    read_stat,
    start_boottime,
)

CHILD = (
    "import sys; open('/proc/self/comm', 'w').write('ri (x) y'); "
    "print(1, flush=True); sys.stdin.read()"
)


def test_live_then_gone_process() -> None:
    before = now()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "1\n"
    after = now()
    try:
        pid = child.pid
        assert pid in list_pids("/proc")
        stat = read_stat("/proc", pid)
        assert stat is not None and stat.comm == "ri (x) y" == read_comm("/proc", pid)
        tick = 1 / clock_ticks()
        started = start_boottime(stat, clock_ticks())
        # the kernel truncates the start to a tick: exact to that, on the wall clock too
        assert before.boot - tick <= started <= after.boot
        wall = after.wall_of(started)
        assert before.wall - tick - 0.001 <= wall <= after.wall + 0.001
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


def test_the_two_clocks_are_read_together_and_name_the_boot() -> None:
    """Wall and boot clock from one reading agree with each other to well under a
    millisecond (``btime`` of /proc/stat is whole seconds and would be up to 1 s off)."""
    a, b = now(), now()
    assert 0 <= b.boot - a.boot < 0.01
    assert abs(b.offset - a.offset) < 0.001
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    assert btime <= a.offset < btime + 1 or abs(a.offset - btime) < 2  # NTP may slew
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert boot_id("/proc") == f.read().strip()
    assert boot_id("/nonexistent") is None
