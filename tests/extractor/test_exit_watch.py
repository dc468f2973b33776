"""Pods that exit between two passes, on the real kernel: the exit watcher's tombstones.

The runtime and the kubelet remove an exited pod's cgroups, and with them the CPU used
since the last pass (docs/cgroups.md). The extractor's exit watcher
reads a pod's counters when its cgroup2 ``cgroup.events`` says ``populated 0``; the bill
must equal the kernel's counter read by the test just before the rmdir, exactly once,
however many snapshots repeat the tombstone. Hybrid (v1 counters, v2 events: this host)
and pure v2 (the unified hierarchy alone, as the cgroup root).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.meter.client import OpenMeterClient
from exporter.meter.pipeline import Meter
from exporter.meter.spool import Spool
from exporter.node.source import ExtractorClient
from extractor.cgroups.layout import Layout, detect
from extractor.contract import ExitedContainer, Pod, Snapshot, Usage
from extractor.exitwatch import ExitWatcher
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner
from extractor.tombstones import FILE_NAME, TombstoneFile
from hostfs import Moment, boot_id
from hostfs import now as clock_now
from tests.support.kernel import (
    UNIFIED,
    KubeTree,
    container_id,
    hybrid_mounts,
    inotify_watches,
    pod_uid,
    v2_mounts,
)
from tests.support.openmeter import FakeOpenMeter
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.root

ROOT = REPO_ROOT
KUBELET_DELAY = 0.5
"""The kubelet removes a pod's cgroup well after its last container exited (its
housekeeping runs every 2 s); the watcher reads in milliseconds."""


@pytest.fixture(params=["hybrid", "v2"])
def layout(request: pytest.FixtureRequest) -> Iterator[tuple[KubeTree, HostPaths]]:
    if request.param == "hybrid":
        tree = KubeTree(hybrid_mounts(), driver="cgroupfs")
        paths = HostPaths(cgroup_root="/sys/fs/cgroup")
    else:
        tree = KubeTree(v2_mounts(), driver="systemd")
        paths = HostPaths(cgroup_root=UNIFIED)
    yield tree, paths
    tree.cleanup()


@pytest.fixture
def hybrid() -> Iterator[KubeTree]:
    tree = KubeTree(hybrid_mounts())
    yield tree
    tree.cleanup()


def exited(snapshot: Snapshot, uid: str) -> Pod:
    (pod,) = [p for p in snapshot.exited_pods if p.uid == uid]
    return pod


def cpu_ns(pod: Pod) -> int:
    assert pod.usage is not None and pod.usage.cpu is not None
    return pod.usage.cpu.usage_ns


def watcher_errors(snapshot: Snapshot) -> list[str]:
    return [e for e in snapshot.errors if e.startswith("exit watcher")]


def made_by(tree: KubeTree, snapshot: Snapshot) -> Snapshot:
    """The snapshot with only this test's pods, as the meter sees it here: its counters
    (lost windows) then count nothing that other pods on the machine did."""

    def mine(usage: Usage | None) -> bool:
        return usage is not None and tree.prefix in usage.cgroup

    return snapshot.model_copy(
        update={
            "pods": [p for p in snapshot.pods if mine(p.usage)],
            "exited_pods": [p for p in snapshot.exited_pods if mine(p.usage)],
            "containers": [c for c in snapshot.containers if mine(c.usage)],
        }
    )


def meta(uid: str, name: str, container: str | None = None) -> PodMeta:
    statuses = [ContainerStatus(name="job", container_id=container)] if container else []
    return PodMeta(
        uid=uid,
        cgroup_uid=uid,
        namespace="batch",
        name=name,
        annotations={"openmeter.io/subject": "customer-7"},
        containers=statuses,
    )


async def test_a_pod_that_lived_between_two_passes_is_billed_its_final_counter_once(
    layout: tuple[KubeTree, HostPaths], tmp_path: Path
) -> None:
    tree, paths = layout
    tree.spawn(tree.container_path(pod_uid(), container_id()))  # a pod that stays
    async with FakeOpenMeter(token="t") as om:
        scanner = Scanner(paths, keep_open=64, watch_exits=True)  # closed however it ends
        client = OpenMeterClient(om.url, token=lambda: "t")
        m = Meter(Spool(tmp_path, 1 << 20), client, interval_seconds=0.001)
        try:
            first = scanner.take()
            uid = pod_uid()
            pods = {uid: meta(uid, "report-1")}  # as the reflector keeps a deleted pod
            m.observe(made_by(tree, first), pods.get)
            job_id = container_id()
            job = tree.spawn(tree.container_path(uid, job_id))
            burned = job.burn(0.2)
            job.finish()
            final = tree.pod_cpu_ns(uid)  # what the kernel says, just before the rmdir
            time.sleep(KUBELET_DELAY)
            tree.remove(tree.pod_path(uid))
            snapshots = []
            for _ in range(3):
                time.sleep(0.05)
                snapshots.append(scanner.take())
                m.observe(made_by(tree, snapshots[-1]), pods.get)
        finally:
            scanner.close()
        assert await m.deliver_once()
        await m.stop()
    for s in snapshots:  # every snapshot during the retention lists it, none as live
        pod = exited(s, uid)
        assert cpu_ns(pod) == final and final >= burned
        assert uid not in {p.uid for p in s.pods}
        # other pods on the machine may vanish unread: only this test's count
        assert [e for e in watcher_errors(s) if tree.prefix in e] == []
    pod = exited(snapshots[0], uid)
    assert pod.qos == "burstable" and pod.usage is not None
    assert pod.usage.cgroup == tree.pod_path(uid)  # the cgroup a pass names for it
    assert pod.started_at is not None and pod.exited_at is not None
    assert first.taken_at < pod.started_at < pod.exited_at < snapshots[0].taken_at
    (event,) = [e for e in om.events.values() if e["data"]["pod_uid"] == uid]
    assert event["subject"] == "customer-7"
    assert event["data"]["cpu_ns"] == final
    # no pass saw its container, but the watcher did: its run, with its own final counter
    # (named by its id: this tree has no runtime state to name it from)
    (run,) = [r for r in snapshots[0].exited_containers if r.id == job_id]
    assert event["data"]["containers"] == {job_id[:12]: final}
    assert run.started_at is not None and run.started_at < run.exited_at
    assert abs(run.exited_at - pod.exited_at) < 0.05  # the two cgroups emptied together
    ran = min(run.exited_at, pod.exited_at) - run.started_at
    # each wall-clock time is a boot-clock time put on the wall with its own reading of
    # both clocks (hostfs/clock.py): a few microseconds apart from one reading to another
    assert event["data"]["runtime_seconds"] == pytest.approx(ran, abs=1e-4)
    assert m.stats().pod_windows_lost == 0


async def test_a_pod_seen_at_a_pass_that_exits_before_the_next_is_billed_to_its_end(
    layout: tuple[KubeTree, HostPaths], tmp_path: Path
) -> None:
    tree, paths = layout
    uid, cid = pod_uid(), container_id()
    worker = tree.spawn(tree.container_path(uid, cid))
    worker.burn(0.05)
    pods = {uid: meta(uid, "web-1", cid)}
    async with FakeOpenMeter(token="t") as om:
        scanner = Scanner(paths, keep_open=64, watch_exits=True)  # closed however it ends
        client = OpenMeterClient(om.url, token=lambda: "t")
        m = Meter(Spool(tmp_path, 1 << 20), client, interval_seconds=0.001)
        try:
            first = scanner.take()
            m.observe(made_by(tree, first), pods.get)
            (seen,) = [p for p in first.pods if p.uid == uid]
            mark = cpu_ns(seen)
            burned = worker.burn(0.2)
            worker.finish()
            final = tree.pod_cpu_ns(uid)
            time.sleep(KUBELET_DELAY)
            tree.remove(tree.pod_path(uid))
            later = [scanner.take() for _ in range(2)]
            for s in later:
                m.observe(made_by(tree, s), pods.get)
        finally:
            scanner.close()
        assert await m.deliver_once()
        await m.stop()
    assert all(cpu_ns(exited(s, uid)) == final for s in later)
    (event,) = [e for e in om.events.values() if e["data"]["pod_uid"] == uid]
    assert event["data"]["cpu_ns"] == final - mark and final - mark >= burned
    assert event["data"]["containers"] == {"job": final - mark}  # its one exited container
    assert m.stats().pod_windows_lost == 0


def _settled(agree: Callable[[], bool]) -> bool:
    """Whether two counts of a live system agree within a moment: the kernel's count and
    the watcher's are read one after the other while other pods of the machine change."""
    deadline = time.monotonic() + 5.0
    while not agree():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_burst_of_short_pods_is_read_exactly_or_not_at_all(
    layout: tuple[KubeTree, HostPaths],
) -> None:
    """Many pods created, run and removed quickly: a pod removed before the watcher read
    it is lost (the documented limit), but every reading there is must be exact, the pods
    the kubelet gives the usual moment must all be there, and no watch may leak."""
    tree, paths = layout
    for qos in ("burstable", "besteffort"):  # the QoS levels exist before the watcher
        tree.make(tree.pod_path(pod_uid(), qos).rsplit("/", 1)[0])
    scanner = Scanner(paths, keep_open=64, watch_exits=True)
    assert scanner.exits is not None
    exits = scanner.exits

    def ours() -> list[str]:
        """Watches in this test's own tree: other pods of the machine come and go."""
        return sorted(p for p in exits.watched() if p.startswith(tree.prefix))

    watches = ours()
    assert _settled(lambda: inotify_watches() == exits.watches)
    expected: dict[str, int] = {}
    kept: list[tuple[str, str]] = []
    try:
        for i in range(60):
            uid, qos = pod_uid(), ("burstable", "besteffort", "guaranteed")[i % 3]
            tree.run_short(tree.container_path(uid, container_id(), qos))
            expected[uid] = tree.final_cpu_ns(uid, qos)
            if i % 2:
                tree.remove(tree.pod_path(uid, qos))  # removed at once
            else:
                kept.append((uid, qos))
        time.sleep(KUBELET_DELAY)
        for uid, qos in kept:
            tree.remove(tree.pod_path(uid, qos))
        time.sleep(0.2)
        snapshot = scanner.take()
        assert scanner.exits.alive
        got = {p.uid: cpu_ns(p) for p in snapshot.exited_pods if p.uid in expected}
        assert {uid: expected[uid] for uid in got} == got
        assert {uid for uid, _ in kept} <= set(got)
        errors = watcher_errors(snapshot)
        assert all("removed before" in e for e in errors), errors
        assert ours() == watches
        assert _settled(lambda: inotify_watches() == exits.watches)  # no watch leaked
    finally:
        scanner.close()
    assert inotify_watches() == 0


def test_the_watcher_waits_for_its_hierarchy_and_then_watches_it() -> None:
    """A hierarchy that cannot be watched is an error for the next snapshot and a retry
    after a back-off, never a dead thread."""
    root = f"{UNIFIED}/ri-test-root-{os.getpid()}-{time.monotonic_ns()}"
    watcher = ExitWatcher(Layout(root=root, version="v2", unified=root))
    watcher.start()
    tree = KubeTree({"": root})
    try:
        assert not watcher.wait_ready(0.3)
        os.mkdir(root)
        assert watcher.wait_ready(10.0)
        errors = watcher.collect({}, ()).errors
        assert any("cannot watch the hierarchy" in e for e in errors)
        assert watcher.alive and watcher.sessions >= 2
        uid = pod_uid()
        tree.run_short(tree.container_path(uid, container_id()))
        final = tree.pod_cpu_ns(uid)
        deadline = time.monotonic() + 10
        found: list[Pod] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = watcher.collect({}, ()).pods
        assert [(p.uid, cpu_ns(p)) for p in found] == [(uid, final)]
    finally:
        watcher.close()
        tree.cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(root)


def _scanner_out_of_descriptors() -> Scanner:
    """A Scanner started with one descriptor to spare (its eventfd), so the watcher's
    first inotify_init1 fails with EMFILE. Another thread of this process (a test's
    asyncio worker, a garbage-collected file) may free a descriptor in between; then the
    first session succeeds and the start is tried again, until it failed as meant."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for _ in range(10):
        gc.collect()
        in_use = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself used
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 1, hard))  # one: the eventfd
        try:
            scanner = Scanner(HostPaths(), keep_open=0, watch_exits=True)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert scanner.exits is not None
        if scanner.exits.wait_ready(20.0) and scanner.exits.sessions >= 2:
            return scanner
        scanner.close()
    raise AssertionError("the watcher never met EMFILE: descriptors kept being freed")


def test_a_watcher_out_of_descriptors_reports_it_and_recovers(hybrid: KubeTree) -> None:
    """inotify_init1 failing (EMFILE: the process is out of descriptors) costs the watcher
    its session, which the next snapshot reports, and never the extractor: it retries
    after a back-off and watches again once descriptors are back."""
    scanner = _scanner_out_of_descriptors()
    try:
        assert scanner.exits is not None
        assert scanner.exits.wait_ready(20.0)
        uid = pod_uid()
        hybrid.run_short(hybrid.container_path(uid, container_id()))
        final = hybrid.pod_cpu_ns(uid)
        time.sleep(KUBELET_DELAY)
        snapshot = scanner.take()
        assert any("Too many open files" in e for e in watcher_errors(snapshot))
        assert cpu_ns(exited(snapshot, uid)) == final
    finally:
        scanner.close()


def fetch(socket_path: str) -> Snapshot:
    async def once() -> Snapshot:
        client = ExtractorClient(socket_path, 30.0)
        try:
            return await client.fetch()
        finally:
            await client.aclose()

    return asyncio.run(once())


def wait_for_exit(socket_path: str, uid: str, errors: list[str]) -> Pod:
    """Snapshots until one lists ``uid`` as exited; every error seen is added to ``errors``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snapshot = fetch(socket_path)
        errors.extend(snapshot.errors)
        found = [p for p in snapshot.exited_pods if p.uid == uid]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"pod {uid} never listed as exited")


def test_the_serving_extractor_survives_overflow_and_pods_gone_before_watched(
    hybrid: KubeTree, tmp_path: Path
) -> None:
    """``extractor serve`` stopped (SIGSTOP) while pods come and go: one is removed before
    its watch could be added, more events arrive than the inotify queue holds (the kernel
    then reports IN_Q_OVERFLOW), and a pod exits whose only trace is its directory."""
    socket_path = str(tmp_path / "extractor.sock")
    burstable = hybrid.pod_path(pod_uid()).rsplit("/", 1)[0]
    hybrid.make(burstable)
    argv = ["extractor", "serve", "--no-fingerprints", "--socket", socket_path]
    server = subprocess.Popen([sys.executable, "-m", "runtime_insights", *argv], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        fetch(socket_path)
        with open("/proc/sys/fs/inotify/max_queued_events") as f:
            queue = int(f.read())
        os.kill(server.pid, signal.SIGSTOP)
        try:
            early = hybrid.pod_path(pod_uid())
            hybrid.make(early)
            hybrid.remove(early)
            flood = hybrid.directory("", burstable)
            for i in range(queue // 2 + 64):
                os.mkdir(f"{flood}/flood-{i}")
                os.rmdir(f"{flood}/flood-{i}")
            uid = pod_uid()
            hybrid.run_short(hybrid.container_path(uid, container_id()))
            final = hybrid.pod_cpu_ns(uid)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        errors: list[str] = []
        assert cpu_ns(wait_for_exit(socket_path, uid, errors)) == final
        assert any("overflowed" in e for e in errors)
        hybrid.remove(hybrid.pod_path(uid))
        # and it goes on watching: a new short pod is read as usual
        again = pod_uid()
        hybrid.run_short(hybrid.container_path(again, container_id()))
        final_again = hybrid.pod_cpu_ns(again)
        time.sleep(KUBELET_DELAY)
        hybrid.remove(hybrid.pod_path(again))
        assert cpu_ns(wait_for_exit(socket_path, again, errors)) == final_again
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(15)


def wait_until(found: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def layout_of(paths: HostPaths) -> Layout:
    return detect(paths.cgroup_root)


def test_a_pod_refilled_before_the_pass_keeps_its_tombstone(
    layout: tuple[KubeTree, HostPaths],
) -> None:
    """A pod without a sandbox restarts its only container: it empties (buried), then
    fills again before the pass collects. A pass that found none of its processes must
    still list its last reading, or the meter would see the pod in neither list."""
    tree, paths = layout
    watcher = ExitWatcher(layout_of(paths))
    watcher.start()
    try:
        assert watcher.wait_ready(10.0)
        uid = pod_uid()
        first = tree.spawn(tree.container_path(uid, container_id()))
        first.burn(0.05)
        first.finish()
        final = tree.pod_cpu_ns(uid)
        wait_until(lambda: uid in _tomb_uids(watcher), "burial")
        second = tree.spawn(tree.container_path(uid, container_id()))  # the restart
        second.burn(0.01)
        listed = [p for p in watcher.collect({}, ()).pods if p.uid == uid]
        assert [cpu_ns(p) for p in listed] == [final]
        assert listed[0].exited_late is False
        second.finish()
        wait_until(lambda: cpu_ns(_listed(watcher, uid)) > final, "the second burial")
        assert cpu_ns(_listed(watcher, uid)) == tree.pod_cpu_ns(uid)
        assert _listed(watcher, uid).exited_at > listed[0].exited_at  # type: ignore[operator]
    finally:
        watcher.close()


def _tomb_uids(watcher: ExitWatcher) -> set[str]:
    return {p.uid for p in watcher.collect({}, ()).pods}


def _listed(watcher: ExitWatcher, uid: str) -> Pod:
    (pod,) = [p for p in watcher.collect({}, ()).pods if p.uid == uid]
    return pod


def test_each_container_run_is_timed_by_its_cgroup(layout: tuple[KubeTree, HostPaths]) -> None:
    """Runs shorter than a pass and each run of a crash-looping container are known from
    their cgroup filling and emptying, to the millisecond, with their final counters."""
    tree, paths = layout
    uid = pod_uid()
    keeper = tree.spawn(tree.container_path(uid, container_id()))  # keeps the pod populated
    watcher = ExitWatcher(layout_of(paths), hz=os.sysconf("SC_CLK_TCK"))
    watcher.start()
    runs: list[tuple[str, float, float, int]] = []
    try:
        assert watcher.wait_ready(10.0)
        for _ in range(3):  # one container name, restarted: a new id each time
            cid = container_id()
            rel = tree.container_path(uid, cid)
            tree.make(rel)
            # its watch is in place, as for a runtime's mkdir-then-start
            wait_until(_watching(watcher, rel), "the container's watch")
            before = time.time()
            tree.run_short(tree.container_path(uid, cid), loops=20000)
            after = time.time()
            counter = _container_cpu_ns(tree, tree.container_path(uid, cid))
            runs.append((cid, before, after, counter))
        ours = {cid for cid, *_ in runs}  # other pods of the machine end runs too

        def ended_runs() -> dict[str, ExitedContainer]:
            return {c.id: c for c in watcher.collect({}, ()).containers if c.id in ours}

        wait_until(lambda: len(ended_runs()) == 3, "three runs")
        ended = ended_runs()
        for cid, before, after, counter in runs:
            run = ended[cid]
            assert run.pod_uid == uid and not run.exited_late
            assert run.started_at is not None and run.started_boottime is not None
            # stamped when the watcher's thread handles the event: milliseconds, unless
            # the machine is very busy
            assert before - 0.005 <= run.started_at < run.exited_at <= after + 0.5
            assert run.exited_boottime - run.started_boottime == pytest.approx(
                run.exited_at - run.started_at, abs=1e-3
            )
            assert run.usage is not None and run.usage.cpu is not None
            assert run.usage.cpu.usage_ns == counter
        assert uid not in _tomb_uids(watcher)  # the pod itself still runs
    finally:
        watcher.close()
        keeper.stop()


def _watching(watcher: ExitWatcher, rel: str) -> Callable[[], bool]:
    return lambda: rel in watcher.watched()


def _container_cpu_ns(tree: KubeTree, path: str) -> int:
    if "cpuacct" in tree.mounts:
        with open(f"{tree.directory('cpuacct', path)}/cpuacct.usage") as f:
            return int(f.read())
    with open(f"{tree.directory('', path)}/cpu.stat") as f:
        return int(f.readline().split()[1]) * 1000


def test_tombstones_outlive_the_extractor_process(hybrid: KubeTree, tmp_path: Path) -> None:
    """A pod that ended just before the extractor restarted is listed by the next one,
    with the same final counters and exit time, even after the kubelet removed its
    cgroup; a file of another boot is ignored."""
    paths = HostPaths(cgroup_root="/sys/fs/cgroup")
    store = TombstoneFile(str(tmp_path / FILE_NAME), boot_id("/proc"))
    watcher = ExitWatcher(layout_of(paths), store=store)
    watcher.start()
    uid = pod_uid()
    try:
        assert watcher.wait_ready(10.0)
        hybrid.run_short(hybrid.container_path(uid, container_id()))
        wait_until(lambda: uid in _tomb_uids(watcher), "burial")
        before = _listed(watcher, uid)
    finally:
        watcher.close()  # the extractor stops (a killed one wrote the file within 0.5 s)
    hybrid.remove(hybrid.pod_path(uid))  # and the kubelet removes the pod meanwhile
    again = ExitWatcher(layout_of(paths), store=TombstoneFile(store.path, store.boot_id))
    again.start()
    try:
        assert again.wait_ready(10.0)
        assert _listed(again, uid) == before
    finally:
        again.close()
    other_boot = ExitWatcher(layout_of(paths), store=TombstoneFile(store.path, "another-boot"))
    assert uid not in {p.uid for p in other_boot.collect({}, ()).pods}


def test_an_exit_found_by_a_rescan_is_dated_late_not_at_the_rescan(hybrid: KubeTree) -> None:
    """A pod that emptied while nobody watched: the exit is marked late and dated no
    later than what the watcher knew, never to the moment of the rescan (which made
    durations too long)."""
    uid = pod_uid()
    hybrid.run_short(hybrid.container_path(uid, container_id()))
    ended_by = time.time()
    time.sleep(0.3)
    watcher = ExitWatcher(layout_of(HostPaths(cgroup_root="/sys/fs/cgroup")))
    watcher.start()
    try:
        assert watcher.wait_ready(10.0)
        pod = _listed(watcher, uid)
        assert pod.exited_late
        assert pod.exited_at is not None and pod.exited_at <= ended_by
        assert cpu_ns(pod) == hybrid.pod_cpu_ns(uid)
    finally:
        watcher.close()


class SteppedClock:
    """A clock whose wall time can be stepped back while the boot clock runs on."""

    def __init__(self) -> None:
        self.wall_step = 0.0
        self.boot_step = 0.0

    def __call__(self) -> Moment:
        real = clock_now()
        return Moment(wall=real.wall + self.wall_step, boot=real.boot + self.boot_step)


def test_retention_is_measured_on_the_boot_clock(hybrid: KubeTree) -> None:
    """A wall clock stepped back an hour neither keeps a tombstone past its retention
    nor drops one early."""
    clock = SteppedClock()
    watcher = ExitWatcher(
        layout_of(HostPaths(cgroup_root="/sys/fs/cgroup")), retention_seconds=60.0, clock=clock
    )
    watcher.start()
    uid = pod_uid()
    try:
        assert watcher.wait_ready(10.0)
        hybrid.run_short(hybrid.container_path(uid, container_id()))
        wait_until(lambda: uid in _tomb_uids(watcher), "burial")
        clock.wall_step = -3600.0
        clock.boot_step = 30.0
        assert uid in _tomb_uids(watcher)  # half its retention: kept
        clock.wall_step = +3600.0
        assert uid in _tomb_uids(watcher)  # a step forward does not expire it either
        clock.boot_step = 61.0
        assert uid not in _tomb_uids(watcher)
    finally:
        watcher.close()
