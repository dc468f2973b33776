"""pidfds tell which known processes exited, and never confuse a reused PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from extractor.pidwatch import PidWatch, usable_for


def test_exit_is_reported_once_and_forgotten() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    watch = PidWatch(capacity=4)
    try:
        assert watch.track(child.pid) and child.pid in watch
        assert watch.alive(child.pid) and watch.exited() == []
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        assert watch.exited() == [child.pid]
        assert child.pid not in watch and watch.exited() == []
    finally:
        watch.close()


def test_capacity_and_vanished_pids() -> None:
    watch = PidWatch(capacity=1)
    try:
        assert watch.track(os.getpid())
        assert not watch.track(os.getppid())  # full
        assert os.getpid() in watch and os.getppid() not in watch
    finally:
        watch.close()
    assert len(watch) == 0
    assert not PidWatch(capacity=4).track(2**22 + 12345)  # beyond pid_max: no process


def test_only_our_own_pid_namespace_is_usable(tmp_path: Path) -> None:
    assert usable_for("/proc")
    assert not usable_for(str(tmp_path))
