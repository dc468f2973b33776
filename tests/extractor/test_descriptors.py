"""The extractor's descriptor budget: its soft limit raised to the hard one at start, the
budget split by what the node needs, and the start line saying what is kept open."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from extractor.descriptors import PER_PROCESS, RESERVE, claim, split
from tests.support.kernel import KubeTree, container_id, hybrid_mounts, pod_uid

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")
PROBE = (
    "import sys; from extractor.descriptors import raise_open_files as r; "
    "print(r(*map(int, sys.argv[1:])).describe())"
)


def limited(soft: int, hard: int) -> Callable[[], None]:
    """A preexec_fn giving the child these descriptor limits, as a runtime would."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def probe(soft: int, hard: int, *wanted: int) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, wanted)],
        preexec_fn=limited(soft, hard),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_everything_kept_when_it_fits_with_the_rest_as_room() -> None:
    s = split(20_000, counter_files=8_000, processes=4_000)
    assert s.everything
    assert s.counter_files >= 8_000 and s.processes >= 4_000
    assert s.counter_files + PER_PROCESS * s.processes <= 20_000
    assert s.describe() == "keeping all 8000 counter files and 4000 processes open"


def test_shared_in_proportion_when_it_does_not_fit() -> None:
    s = split(8_000, counter_files=8_000, processes=4_000)
    assert not s.everything
    assert s.counter_files == 4_000 and s.processes == 2_000
    text = s.describe()
    assert "keeping 4000 of 8000 counter files and 2000 of 4000 processes open" in text
    assert f"about {8_000 + 2 * 4_000 + RESERVE} open files would keep them all" in text


def test_details_give_way_first_when_it_does_not_fit() -> None:
    """Files read every few passes lose their descriptors before those read on every pass
    and the processes; when even those do not fit, they share in proportion."""
    s = split(20_000, counter_files=4_250, processes=4_000, details=12_750)
    assert not s.everything
    assert (s.counter_files, s.processes) == (4_250, 4_000)
    assert s.detail_files == 20_000 - 4_250 - PER_PROCESS * 4_000
    text = s.describe()
    assert f"keeping {4_250 + s.detail_files} of 17000 counter files and 4000 of 4000" in text
    assert "4250 of the 4250 read on every pass are kept" in text
    tight = split(8_000, counter_files=8_000, processes=4_000, details=10_000)
    assert (tight.counter_files, tight.processes, tight.detail_files) == (4_000, 2_000, 0)
    roomy = split(40_000, counter_files=4_250, processes=4_000, details=12_750)
    assert roomy.everything and roomy.detail_files >= 12_750
    assert roomy.counter_files + roomy.detail_files + PER_PROCESS * roomy.processes <= 40_000


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert probe(1024, min(hard, 8192)) == (
        f"open files limit raised from 1024 to {min(hard, 8192)} (hard {min(hard, 8192)})"
    )


def test_a_wanted_limit_caps_it_and_nothing_is_ever_lowered() -> None:
    assert probe(1024, 8192, 4096) == "open files limit raised from 1024 to 4096 (hard 8192)"
    assert probe(2048, 8192, 1000) == "open files limit 2048 (hard 8192)"


@pytest.fixture
def tree() -> Iterator[KubeTree]:
    if os.geteuid() != 0:
        pytest.skip("needs root (real cgroups)")
    made = KubeTree(hybrid_mounts())
    yield made
    made.cleanup()


def start_line(sock: str, soft: int, hard: int, *args: str) -> str:
    """The first pass's line of ``extractor serve`` started with these limits."""
    proc = subprocess.Popen(
        [CLI, "extractor", "serve", "--socket", sock, "--no-fingerprints", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limited(soft, hard),
    )
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(sock):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no socket"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    (line,) = [x for x in err.splitlines() if "first pass:" in x]
    return line


@pytest.mark.root
def test_serve_keeps_a_nodes_files_open_and_says_so(tree: KubeTree, tmp_path: Path) -> None:
    """Started as a runtime starts containers (soft 1024), the extractor raises its limit
    and keeps every counter file and process of the node open, when they fit (other
    suites on this machine may have made the node larger than the hard limit: then the
    line must say how much would)."""
    for _ in range(3):
        uid = pod_uid()
        tree.spawn(tree.container_path(uid, container_id()))
    hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    line = start_line(str(tmp_path / "x.sock"), 1024, hard)
    assert f"open files limit raised from 1024 to {hard} (hard {hard})" in line
    kept = re.search(r"keeping all (\d+) counter files and (\d+) processes open", line)
    if kept is None:
        need = re.search(r"about (\d+) open files would keep them all", line)
        assert need is not None and int(need.group(1)) > hard - RESERVE, line
        return
    files, processes = int(kept.group(1)), int(kept.group(2))
    # three containers and three pods of eight v1 counter files each, at least
    assert files >= 3 * 2 * 8 and processes >= len(tree.workers)
    assert files + PER_PROCESS * processes <= hard - RESERVE


@pytest.mark.root
def test_a_hard_limit_too_low_for_the_node_is_named(tree: KubeTree, tmp_path: Path) -> None:
    tree.spawn(tree.container_path(pod_uid(), container_id()))
    line = start_line(str(tmp_path / "x.sock"), 400, 400)
    assert "open files limit 400 (hard 400)" in line
    found = re.search(r"keeping (\d+) of (\d+) counter files and (\d+) of (\d+) processes", line)
    assert found is not None, line
    kept_files, files, kept_procs, procs = map(int, found.groups())
    assert kept_files < files or kept_procs < procs
    assert kept_files + PER_PROCESS * kept_procs <= 400 - RESERVE
    assert "open files would keep them all" in line


@pytest.mark.root
def test_what_a_scanner_holds_never_exceeds_its_budget(tree: KubeTree) -> None:
    """The first pass fills both pools by a blind split; once the node's needs are known
    the split changes, and a pool over its new share gives descriptors back."""
    from extractor.hostpaths import HostPaths
    from extractor.scanner import Scanner

    for _ in range(4):
        tree.spawn(tree.container_path(pod_uid(), container_id()))
    before = len(os.listdir("/proc/self/fd"))
    scanner = Scanner(HostPaths(), keep_open=60)
    try:
        for _ in range(3):
            scanner.take()
            assert scanner.watch is not None
            files = len(scanner.kept) + len(scanner.kept_details) + len(scanner.network)
            held = files + PER_PROCESS * len(scanner.watch)
            assert held <= 60
            assert len(os.listdir("/proc/self/fd")) - before <= 60
            assert len(scanner.kept) + len(scanner.network) <= scanner.budget.counter_files
            assert len(scanner.kept_details) <= scanner.budget.detail_files
            assert len(scanner.watch) <= scanner.budget.processes
        assert not scanner.budget.everything  # the machine has more than 60 files' worth
    finally:
        scanner.close()


def test_two_keepers_in_one_process_never_count_on_the_same_descriptors() -> None:
    """Each may grow into what the process has free, which what the other holds is not."""
    held = {"a": 0, "b": 0}
    a = claim(lambda: held["a"])
    b = claim(lambda: held["b"])
    try:
        room = a.total
        assert room > 2000 and b.total == room
        held["a"] = 1000
        assert a.total == room and b.total == room - 1000
        held["b"] = 500
        assert a.total == room - 500 and b.total == room - 1000
    finally:
        a.release()
    assert b.total == room  # a's descriptors count as free again
    b.release()
    assert claim(lambda: 0, 64).total == 64
