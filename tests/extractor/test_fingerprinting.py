"""The fingerprint supervisor: a pass never waits on the worker, a stuck or dead worker
is replaced, failures back off, warm passes send nothing.

Against the real worker (``python -m fingerprints.worker``) on real processes, and
against stand-in workers (small real processes speaking the same line protocol) that
stall, die or answer slowly, to drive the failure paths on purpose.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from extractor.contract import Fingerprint
from extractor.fingerprinting import MAX_RECHECKS, PENDING, Fingerprints
from hostfs import ProcStat

STAND_IN = r"""
import json, os, sys, time
mode = sys.argv[1]
print(json.dumps({"ready": os.getpid(), "modules": []}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    job = request["job"]
    if mode == "stall" or (mode == "stall-on-1" and request["pids"] == [1]):
        time.sleep(3600)
    if mode == "exit":
        sys.exit(3)
    if mode.startswith("slow:"):
        time.sleep(float(mode[5:]))
    fields = {"kind": "Fake", "kindVersion": str(job)}
    chosen = None
    if mode == "kindless":  # what a shell or a runtime caught before it maps its library
        fields = {"os": "debian"}
        with open(f"/proc/{request['pids'][0]}/stat") as f:
            chosen = [request["pids"][0], int(f.read().rpartition(")")[2].split()[19])]
    if mode == "budget":
        fields["error"] = "time budget of 5s exceeded"
    answer = {"job": job, "fields": fields, "chosen": chosen, "overBudget": mode == "budget"}
    print(json.dumps(answer), flush=True)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stand_in(mode: str) -> list[str]:
    return [sys.executable, "-c", STAND_IN, mode]


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def settled(fps: Fingerprints, cid: str, pids: list[int]) -> Fingerprint:
    """The first pass's answer (pending), then what the worker found."""
    assert fps(cid, pids) is PENDING
    assert fps.wait(60)
    fp = fps.current(cid)
    assert fp is not None
    return fp


def test_real_worker_loads_only_the_fingerprints_packages(sleeper: int) -> None:
    fps = Fingerprints("/proc")
    try:
        fp = settled(fps, "c1", [sleeper])
        loaded = fps.stats.last_ready["modules"]
        assert isinstance(loaded, list)
        modules = set(loaded)
    finally:
        fps.close()
    assert fp.kind == "Python" and fp.kindVersion == f"Python {sys.version.split()[0]}"
    assert {"fingerprints", "hostfs"} <= modules
    assert not modules & {"extractor", "exporter", "runtime_insights", "tests", "bench"}
    assert not modules & {"pydantic", "aiohttp", "orjson", "httpx", "kubernetes"}


def test_warm_passes_send_nothing_to_the_worker(sleeper: int) -> None:
    fps = Fingerprints("/proc")
    try:
        first = settled(fps, "c1", [sleeper])
        jobs = fps.stats.jobs
        for _ in range(50):
            fps.begin_pass()
            assert fps("c1", [sleeper]) is first  # converted once, handed out as it is
        assert fps.stats.jobs == jobs == 1
    finally:
        fps.close()


def test_a_new_process_is_fingerprinted_again(sleeper: int) -> None:
    fps = Fingerprints("/proc")
    first_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        first = settled(fps, "c1", [first_process.pid])
        first_process.kill()
        first_process.wait()
        fps.begin_pass()
        assert fps("c1", [sleeper]) is first  # its process is gone: served while redone
        assert fps.wait(60)
        assert fps.stats.jobs == 2 and fps.current("c1") is not first
    finally:
        first_process.kill()
        first_process.wait()
        fps.close()


def test_a_stuck_worker_is_abandoned_and_the_container_backs_off() -> None:
    clock = Clock()
    fps = Fingerprints(
        "/proc", max_seconds=0.5, retry_seconds=60, argv=stand_in("stall"), clock=clock
    )
    try:
        t0 = time.monotonic()
        fp = settled(fps, "hostile", [1])
        assert time.monotonic() - t0 < 0.5 + 1.0 + 30  # budget + grace (+ worker start)
        assert fp.error is not None and "time budget of 0.5s exceeded" in fp.error
        assert fp.error.endswith("next attempt in 60s")
        assert fps.stats.abandoned == 1
        for _ in range(5):  # not retried on every pass
            fps.begin_pass()
            assert fps("hostile", [1]) is fp
        assert fps.stats.jobs == 1
        clock.now += 61
        fps.begin_pass()
        assert fps("hostile", [1]) is fp  # due again: queued, the old answer served
        assert fps.wait(60)
        again = fps.current("hostile")
        assert again is not None and again.error is not None
        assert again.error.endswith("next attempt in 120s")  # doubled
        assert (fps.stats.jobs, fps.stats.abandoned, fps.stats.worker_starts) == (2, 2, 2)
    finally:
        fps.close()


def test_a_fingerprint_without_a_kind_is_looked_at_again(sleeper: int) -> None:
    """Same processes, no kind: held between looks, looked at again after
    recheck_seconds, then after twice that, MAX_RECHECKS times; then held for good."""
    clock = Clock()
    fps = Fingerprints("/proc", recheck_seconds=10, argv=stand_in("kindless"), clock=clock)
    try:
        first = settled(fps, "c1", [sleeper])
        assert first.kind is None and first.os == "debian"
        for _ in range(5):
            fps.begin_pass()
            assert fps("c1", [sleeper]) is first
        assert fps.stats.jobs == 1
        clock.now += 10
        fps.begin_pass()
        assert fps("c1", [sleeper]) is first  # due: queued, the old answer served
        assert fps.wait(60) and fps.stats.jobs == 2
        second = fps.current("c1")
        clock.now += 19
        fps.begin_pass()
        assert fps("c1", [sleeper]) is second and fps.stats.jobs == 2
        clock.now += 1
        fps.begin_pass()
        fps("c1", [sleeper])
        assert fps.wait(60) and fps.stats.jobs == 3
        for look in range(3, MAX_RECHECKS + 1):  # the remaining looks, 40 s, 80 s, ...
            clock.now += 10 * 2 ** (look - 1)
            fps.begin_pass()
            fps("c1", [sleeper])
            assert fps.wait(60) and fps.stats.jobs == look + 1
        held = fps.current("c1")
        for _ in range(3):
            clock.now += 4000  # beyond any delay: no more looks at the same processes
            fps.begin_pass()
            assert fps("c1", [sleeper]) is held
        assert fps.stats.jobs == MAX_RECHECKS + 1
    finally:
        fps.close()


def test_a_shell_that_execs_its_workload_is_fingerprinted_as_the_workload() -> None:
    """PID 1 a shell, fingerprinted before it ``exec``s Python: the same PID and start
    time, the same process list, yet the workload is found on the next look (before,
    the shell's kindless answer was kept for as long as the process lived)."""
    clock = Clock()
    shell = subprocess.Popen(
        ["/bin/sh", "-c", 'read line; exec "$0" -c "import time; time.sleep(600)"', sys.executable],
        stdin=subprocess.PIPE,
    )
    fps = Fingerprints("/proc", clock=clock)
    try:
        before = settled(fps, "c1", [shell.pid])
        assert before.kind is None and before.error is None
        assert shell.stdin is not None
        shell.stdin.write(b"go\n")
        shell.stdin.flush()
        deadline = time.monotonic() + 30
        while os.readlink(f"/proc/{shell.pid}/exe") != os.path.realpath(sys.executable):
            assert time.monotonic() < deadline, "the shell never exec'd python"
            time.sleep(0.01)
        fps.begin_pass()
        assert fps("c1", [shell.pid]) is before  # same processes: held until the recheck
        clock.now += 10
        fps.begin_pass()
        fps("c1", [shell.pid])
        assert fps.wait(60)
        after = fps.current("c1")
        assert after is not None and after.kind == "Python", after
    finally:
        fps.close()
        shell.kill()
        shell.wait()


def test_other_containers_go_on_after_a_stuck_one() -> None:
    fps = Fingerprints("/proc", max_seconds=0.5, argv=stand_in("stall-on-1"))
    try:
        assert fps("hostile", [1]) is PENDING and fps("fine", [2]) is PENDING
        assert fps.wait(60)
        fine = fps.current("fine")
        hostile = fps.current("hostile")
        assert fine is not None and fine.kind == "Fake" and fine.error is None
        assert hostile is not None and hostile.error is not None
    finally:
        fps.close()


def test_a_worker_that_dies_is_an_error_and_is_replaced() -> None:
    fps = Fingerprints("/proc", argv=stand_in("exit"))
    try:
        fp = settled(fps, "c1", [1])
        assert fp.error is not None and "fingerprint worker exited (status 3)" in fp.error
        fp2 = settled(fps, "c2", [2])
        assert fp2.error is not None and fps.stats.worker_starts == 2
    finally:
        fps.close()


def test_a_worker_that_cannot_start_is_an_error() -> None:
    fps = Fingerprints("/proc", argv=["/nonexistent/python"])
    try:
        fp = settled(fps, "c1", [1])
    finally:
        fps.close()
    assert fp.error is not None and fp.error.startswith("fingerprint worker did not start")


def test_an_answer_over_budget_backs_off_too() -> None:
    clock = Clock()
    fps = Fingerprints("/proc", argv=stand_in("budget"), clock=clock)
    try:
        fp = settled(fps, "c1", [1])
        assert fp.kind == "Fake"  # partial results are kept
        assert fp.error == "time budget of 5s exceeded; next attempt in 60s"
        fps.begin_pass()
        assert fps("c1", [1]) is fp and fps.stats.jobs == 1
    finally:
        fps.close()


def test_cold_work_gets_a_budget_per_pass() -> None:
    fps = Fingerprints("/proc", pass_seconds=0.1, argv=stand_in("slow:0.3"))
    try:
        for i in range(4):
            fps(f"c{i}", [i + 1])
        assert not fps.wait(2.0)  # one job spent this pass's budget; the rest wait
        assert fps.stats.jobs == 1
        for _ in range(3):
            fps.begin_pass()
            for i in range(4):
                fps(f"c{i}", [i + 1])
            time.sleep(0.5)
        assert fps.wait(10)
        assert fps.stats.jobs == 4
        assert all((fps.current(f"c{i}") or PENDING).kind == "Fake" for i in range(4))
    finally:
        fps.close()


def test_containers_gone_from_a_pass_are_forgotten() -> None:
    fps = Fingerprints("/proc", argv=stand_in("echo"))
    try:
        settled(fps, "gone", [1])
        settled(fps, "kept", [2])
        fps.begin_pass()
        fps("kept", [2])
        fps.begin_pass()  # "gone" was not in the last pass
        assert fps.current("gone") is None and fps.current("kept") is not None
    finally:
        fps.close()


def test_close_does_not_wait_for_a_stuck_worker() -> None:
    fps = Fingerprints("/proc", max_seconds=60, argv=stand_in("stall"))
    fps("hostile", [1])
    deadline = time.monotonic() + 30
    while fps.stats.jobs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fps.stats.jobs == 1
    t0 = time.monotonic()
    fps.close()
    assert time.monotonic() - t0 < 1.0


def test_descriptors_above_select_limit(sleeper: int) -> None:
    """The extractor keeps thousands of descriptors open (counter files, pidfds): the
    worker's pipes get numbers past select()'s 1024, which must not matter."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        fps = Fingerprints("/proc")
        try:
            fp = settled(fps, "c1", [sleeper])
        finally:
            fps.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert fp.kind == "Python" and fp.error is None


def test_the_pass_reading_of_the_processes_is_enough(sleeper: int) -> None:
    """Given discovery's stat of the container's processes, a cached fingerprint is
    checked against it: a chosen process missing from it is looked up, one with another
    start time (PID reuse) is fingerprinted again."""
    fps = Fingerprints("/proc")
    try:
        first = settled(fps, "c1", [sleeper])
        fps.begin_pass()
        with open(f"/proc/{sleeper}/stat") as f:
            ticks = int(f.read().rpartition(")")[2].split()[19])
        assert fps("c1", [sleeper], [ProcStat(sleeper, "python3", ticks)]) is first
        assert fps("c1", [sleeper], []) is first  # not in the reading: looked up, alive
        fps("c1", [sleeper], [ProcStat(sleeper, "python3", ticks + 1)])  # another process
        assert fps.wait(60) and fps.stats.jobs == 2
    finally:
        fps.close()
