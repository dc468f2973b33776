"""One pass over this real machine, checked against the kernel's own counters.

Containers are kubelet-shaped cgroups under a unique ``/ri-test-*`` prefix in the real
v1 hierarchies (cpu, cpuacct, memory, pids, blkio) and in the v2 one at
/sys/fs/cgroup/unified, holding real processes; expected values are read from the
kernel in the test, never written down.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from extractor.cgroups.counters import account_v1
from extractor.contract import Container, Pod, Snapshot
from extractor.descriptors import raise_open_files
from extractor.discover import Discovery
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner, take_snapshot
from hostfs import Moment, read_small
from tests.support.kernel import (
    UNIFIED,
    KubeTree,
    container_id,
    pod_uid,
    read_int,
    read_keyed,
    v1_mounts,
    v2_mounts,
)
from tests.support.kernel import (
    container_in as container,
)
from tests.support.kernel import (
    pod_in as pod,
)
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.root

V1 = HostPaths(proc_root="/proc", cgroup_root="/sys/fs/cgroup")
V2 = HostPaths(proc_root="/proc", cgroup_root=UNIFIED)


@pytest.fixture(params=["cgroupfs", "systemd"])
def v1_tree(request: pytest.FixtureRequest) -> Iterator[KubeTree]:
    tree = KubeTree(v1_mounts(), driver=request.param)
    yield tree
    tree.cleanup()


@pytest.fixture(params=["cgroupfs", "systemd"])
def v2_tree(request: pytest.FixtureRequest) -> Iterator[KubeTree]:
    tree = KubeTree(v2_mounts(), driver=request.param)
    yield tree
    tree.cleanup()


def cpu_ns(c: Container | Pod) -> int:
    assert c.usage is not None and c.usage.cpu is not None, c.errors
    return c.usage.cpu.usage_ns


@dataclass
class Burned:
    tree: KubeTree
    uid: str
    cid: str
    own_ns: int


def burn_in_container(tree: KubeTree, seconds: float = 0.3) -> Burned:
    uid, cid = pod_uid(), container_id()
    worker = tree.spawn(tree.container_path(uid, cid))
    return Burned(tree, uid, cid, worker.burn(seconds))


def test_v1_cpu_equals_kernel_counter_and_process_time(v1_tree: KubeTree) -> None:
    b = burn_in_container(v1_tree)
    acct = v1_tree.directory("cpuacct", v1_tree.container_path(b.uid, b.cid))
    before = read_int(f"{acct}/cpuacct.usage")
    snap = take_snapshot(V1)
    after = read_int(f"{acct}/cpuacct.usage")
    c = container(snap, b.cid)
    # The burner is idle (blocked on stdin), so the counter stands still: exact equality.
    assert before == after == cpu_ns(c)
    assert c.usage is not None and c.usage.cpu is not None
    assert c.usage.cpu.user_ns == read_int(f"{acct}/cpuacct.usage_user")
    assert c.usage.cpu.system_ns == read_int(f"{acct}/cpuacct.usage_sys")
    throttle = read_keyed(
        v1_tree.directory("cpu", v1_tree.container_path(b.uid, b.cid)) + "/cpu.stat"
    )
    assert c.usage.cpu.throttled_ns == throttle["throttled_time"]
    # The process's own CPU clock covers only the burn loop; the cgroup also saw the
    # stdin read and the reply around it, a few ms of Python at most: 5% + 30 ms.
    assert abs(cpu_ns(c) - b.own_ns) <= b.own_ns * 0.05 + 30_000_000
    assert c.pids == [v1_tree.workers[0].pid]
    assert c.pod_uid == b.uid and c.qos == "burstable"
    assert c.runtime == ("containerd" if v1_tree.driver == "systemd" else "unknown")
    p = pod(snap, b.uid)
    assert cpu_ns(p) == read_int(
        v1_tree.directory("cpuacct", v1_tree.pod_path(b.uid)) + "/cpuacct.usage"
    )
    assert p.usage is not None and p.usage.cgroup == v1_tree.pod_path(b.uid)


def test_v1_user_hz_conversion_matches_ns_counters(v1_tree: KubeTree) -> None:
    """cpuacct.stat's user/system (USER_HZ ticks) are the kernel's cputime_adjust split of
    the exact runtime (cpuacct_stats_show since Linux 5.14), each truncated to a tick by
    nsec_to_clock_t: converted back to ns they add up to cpuacct.usage within 2 ticks."""
    b = burn_in_container(v1_tree, 0.2)
    acct = v1_tree.directory("cpuacct", v1_tree.container_path(b.uid, b.cid))

    def without_ns_split(path: str) -> bytes:
        if path.endswith(("cpuacct.usage_all", "cpuacct.usage_user", "cpuacct.usage_sys")):
            raise FileNotFoundError(2, "No such file or directory")
        return read_small(path)

    hz = os.sysconf("SC_CLK_TCK")
    usage, errors = account_v1({"cpuacct": acct}, without_ns_split, "/x", hz)
    assert errors == []
    assert usage.cpu is not None
    user, system = usage.cpu.user_ns, usage.cpu.system_ns
    assert user is not None and system is not None
    ticks = read_keyed(f"{acct}/cpuacct.stat")
    assert user == ticks["user"] * 1_000_000_000 // hz
    assert system == ticks["system"] * 1_000_000_000 // hz
    tick_ns = 1_000_000_000 // hz
    total = read_int(f"{acct}/cpuacct.usage")
    assert user + system <= total < user + system + 2 * tick_ns
    assert user > 0


def test_v2_cpu_stat_in_ns(v2_tree: KubeTree) -> None:
    b = burn_in_container(v2_tree)
    directory = v2_tree.directory("", v2_tree.container_path(b.uid, b.cid))
    snap = take_snapshot(V2)
    stat = read_keyed(f"{directory}/cpu.stat")
    c = container(snap, b.cid)
    assert snap.cgroup_version == "v2"
    assert c.usage is not None and c.usage.cpu is not None
    assert c.usage.cpu.usage_ns == stat["usage_usec"] * 1000
    assert c.usage.cpu.user_ns == stat["user_usec"] * 1000
    assert c.usage.cpu.system_ns == stat["system_usec"] * 1000
    # Same tolerance as v1 (burn loop vs whole cgroup), plus v2's µs truncation.
    assert abs(cpu_ns(c) - b.own_ns) <= b.own_ns * 0.05 + 30_000_000
    assert c.usage.pids == 1  # no pids controller on this v2: counted from cgroup.procs
    assert c.runtime == ("containerd" if v2_tree.driver == "systemd" else "unknown")
    assert c.pod_uid == b.uid and c.qos == "burstable"
    assert cpu_ns(pod(snap, b.uid)) == v2_tree.pod_cpu_ns(b.uid)


def test_exited_container_still_counts_in_its_pod(v1_tree: KubeTree) -> None:
    uid, live_id, gone_id = pod_uid(), container_id(), container_id()
    live = v1_tree.spawn(v1_tree.container_path(uid, live_id))
    gone = v1_tree.spawn(v1_tree.container_path(uid, gone_id))
    live.burn(0.05)
    gone.burn(0.1)
    scanner = Scanner(V1)
    try:
        scanner.take()
        gone.burn(0.1)  # CPU after the first pass, never seen in a container reading
        gone_dir = v1_tree.directory("cpuacct", v1_tree.container_path(uid, gone_id))
        last = read_int(f"{gone_dir}/cpuacct.usage")
        gone.stop()
        v1_tree.remove(v1_tree.container_path(uid, gone_id))  # what the runtime does at exit
        second = scanner.take()
    finally:
        scanner.close()
    assert gone_id not in {c.id for c in second.containers}
    p = pod(second, uid)
    assert p.container_ids == [live_id]
    assert cpu_ns(p) == v1_tree.pod_cpu_ns(uid)
    assert cpu_ns(p) >= cpu_ns(container(second, live_id)) + last


def test_v1_memory_working_set(v1_tree: KubeTree) -> None:
    uid, cid = pod_uid(), container_id()
    worker = v1_tree.spawn(v1_tree.container_path(uid, cid))
    assert worker.ask("alloc 64") == "ok"
    mem = v1_tree.directory("memory", v1_tree.container_path(uid, cid))
    # The worker is idle, but its counters may still move by a few pages (the kernel
    # drains per-CPU charge stock when other cgroups run on that CPU): compare a pass
    # with the files only when they read the same before and after it.
    for _ in range(20):
        before = read_small(f"{mem}/memory.usage_in_bytes")
        snap = take_snapshot(V1)
        if read_small(f"{mem}/memory.usage_in_bytes") == before:
            break
    c = container(snap, cid)
    assert c.usage is not None and c.usage.memory is not None
    m = c.usage.memory
    usage = read_int(f"{mem}/memory.usage_in_bytes")
    inactive = read_keyed(f"{mem}/memory.stat")["total_inactive_file"]
    assert m.current_bytes == usage
    assert m.working_set_bytes == max(usage - inactive, 0)
    assert m.working_set_bytes is not None and m.working_set_bytes >= 64 << 20
    assert m.peak_bytes == read_int(f"{mem}/memory.max_usage_in_bytes")
    assert m.peak_bytes is not None and m.peak_bytes >= usage
    assert m.limit_bytes is None  # no limit set: the ≈2^63 sentinel


def test_v1_memory_limit_is_reported(v1_tree: KubeTree) -> None:
    uid, cid = pod_uid(), container_id()
    v1_tree.spawn(v1_tree.container_path(uid, cid))
    mem = v1_tree.directory("memory", v1_tree.container_path(uid, cid))
    with open(f"{mem}/memory.limit_in_bytes", "w") as f:
        f.write(str(512 << 20))
    c = container(take_snapshot(V1), cid)
    assert c.usage is not None and c.usage.memory is not None
    assert c.usage.memory.limit_bytes == read_int(f"{mem}/memory.limit_in_bytes")
    assert c.usage.pids == read_int(
        v1_tree.directory("pids", v1_tree.container_path(uid, cid)) + "/pids.current"
    )


def test_pause_sandbox_recognised_and_counted_in_pod_only(v1_tree: KubeTree) -> None:
    uid, pause_id, app_id = pod_uid(), container_id(), container_id()
    pause = v1_tree.spawn(v1_tree.container_path(uid, pause_id))
    assert pause.ask("comm pause") == "ok"
    app = v1_tree.spawn(v1_tree.container_path(uid, app_id))
    app.burn(0.05)
    snap = take_snapshot(V1)
    sandbox, workload = container(snap, pause_id), container(snap, app_id)
    assert sandbox.sandbox and sandbox.usage is None
    assert not workload.sandbox and workload.usage is not None
    p = pod(snap, uid)
    assert sorted(p.container_ids) == sorted([pause_id, app_id])
    assert cpu_ns(p) == v1_tree.pod_cpu_ns(uid)


def test_start_time_and_runtime_seconds_from_proc(v1_tree: KubeTree) -> None:
    uid, cid = pod_uid(), container_id()
    first = v1_tree.spawn(v1_tree.container_path(uid, cid))
    v1_tree.spawn(v1_tree.container_path(uid, cid))
    with open(f"/proc/{first.pid}/stat", "rb") as f:
        ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
    started = ticks / os.sysconf("SC_CLK_TCK")  # CLOCK_BOOTTIME seconds
    moment = Moment(wall=1_800_000_000.0, boot=started + 100.0)
    snap = take_snapshot(V1, clock=lambda: moment)
    c = container(snap, cid)
    assert c.started_boottime == started
    assert c.started_at == pytest.approx(1_800_000_000.0 - 100.0)
    assert c.runtime_seconds == pytest.approx(100.0)
    assert c.pids == sorted(w.pid for w in v1_tree.workers)


def test_start_times_are_exact_to_the_kernel_tick_on_the_wall_clock(v1_tree: KubeTree) -> None:
    """A process started between two readings of the clock reads as started between them
    (to one tick, the kernel's resolution): the meter decides from this whether a pod it
    sees for the first time started after its previous pass. /proc/stat's ``btime`` is
    whole seconds and put every start up to a second early."""
    uid, cid = pod_uid(), container_id()
    before = time.time()
    worker = v1_tree.spawn(v1_tree.container_path(uid, cid))
    after = time.time()
    snap = take_snapshot(V1)
    c = container(snap, cid)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert c.pids == [worker.pid]
    assert c.started_at is not None and c.started_boottime is not None
    assert before - tick - 0.002 <= c.started_at <= after + 0.002
    assert snap.taken_boottime is not None and snap.boot_id is not None
    assert snap.taken_at - c.started_at == pytest.approx(
        snap.taken_boottime - c.started_boottime, abs=1e-6
    )


def test_vanished_process_leaves_no_container_and_no_error(v1_tree: KubeTree) -> None:
    uid, cid = pod_uid(), container_id()
    worker = v1_tree.spawn(v1_tree.container_path(uid, cid))
    scanner = Scanner(V1)
    try:
        assert cid in {c.id for c in scanner.take().containers}
        kept = len(scanner.kept)
        worker.stop()
        second = scanner.take()
    finally:
        scanner.close()
    assert cid not in {c.id for c in second.containers}
    assert not [e for e in second.errors if str(worker.pid) in e]
    assert kept > 0


def test_v1_throttling_under_a_cpu_quota(v1_tree: KubeTree) -> None:
    """A container limited to 10 % of a CPU is throttled while it burns: the pass reports
    the kernel's own throttled time (ns, not µs) and period counts, all non-zero."""
    uid, cid = pod_uid(), container_id()
    path = v1_tree.container_path(uid, cid)
    v1_tree.make(path)
    sched = v1_tree.directory("cpu", path)
    with open(f"{sched}/cpu.cfs_quota_us", "w") as f:
        f.write(str(read_int(f"{sched}/cpu.cfs_period_us") // 10))
    worker = v1_tree.spawn(path)
    worker.burn(0.05)  # at 10 % of a CPU: about half a second of wall time
    # the bandwidth timer still closes the period running when the burn ended (on a busy
    # machine, later): wait until the period counters stand still for longer than one
    period = read_int(f"{sched}/cpu.cfs_period_us") / 1e6
    settled, before = read_keyed(f"{sched}/cpu.stat"), None
    for _ in range(50):
        if settled == before:
            break
        time.sleep(1.5 * period)
        before, settled = settled, read_keyed(f"{sched}/cpu.stat")
    c = container(take_snapshot(V1), cid)
    stat = read_keyed(f"{sched}/cpu.stat")  # idle worker: the counters stand still
    assert c.usage is not None and c.usage.cpu is not None
    cpu = c.usage.cpu
    assert stat["nr_throttled"] > 0 and stat["throttled_time"] > 0
    assert cpu.throttled_ns == stat["throttled_time"]
    assert (cpu.periods, cpu.throttled_periods) == (stat["nr_periods"], stat["nr_throttled"])
    # Throttled for most of each period while burning: far more than a microsecond count.
    assert cpu.throttled_ns > 10_000_000


def test_v2_exited_container_still_counts_in_its_pod(v2_tree: KubeTree) -> None:
    """cgroup v2 (rstat) keeps an exited child's CPU in its parent, like v1 cpuacct."""
    uid, live_id, gone_id = pod_uid(), container_id(), container_id()
    live = v2_tree.spawn(v2_tree.container_path(uid, live_id))
    gone = v2_tree.spawn(v2_tree.container_path(uid, gone_id))
    live.burn(0.05)
    scanner = Scanner(V2)
    try:
        scanner.take()
        gone.burn(0.15)  # never seen in a container reading
        gone_dir = v2_tree.directory("", v2_tree.container_path(uid, gone_id))
        last = read_keyed(f"{gone_dir}/cpu.stat")["usage_usec"] * 1000
        gone.stop()
        v2_tree.remove(v2_tree.container_path(uid, gone_id))
        second = scanner.take()
    finally:
        scanner.close()
    assert gone_id not in {c.id for c in second.containers}
    p = pod(second, uid)
    assert p.container_ids == [live_id]
    assert cpu_ns(p) == v2_tree.pod_cpu_ns(uid)
    assert cpu_ns(p) >= cpu_ns(container(second, live_id)) + last


def test_cgroup_vanishing_between_discovery_and_accounting_is_a_container_error(
    v1_tree: KubeTree,
) -> None:
    """The container's processes and cgroup are gone by the time its counters are read
    (discovery saw it a moment before): the pass goes on, the container carries errors."""
    uid, gone_id, kept_id = pod_uid(), container_id(), container_id()
    gone = v1_tree.spawn(v1_tree.container_path(uid, gone_id))
    v1_tree.spawn(v1_tree.container_path(uid, kept_id)).burn(0.02)
    scanner = Scanner(V1)
    run = scanner.discoverer.run

    def discover_then_lose_one() -> Discovery:
        found = run()
        gone.stop()
        v1_tree.remove(v1_tree.container_path(uid, gone_id))
        return found

    scanner.discoverer.run = discover_then_lose_one  # type: ignore[method-assign]
    try:
        snap = scanner.take()
    finally:
        scanner.close()
    lost = container(snap, gone_id)
    assert lost.usage is not None and lost.usage.cpu is None and lost.usage.memory is None
    assert lost.errors and all("cgroup vanished" in e for e in lost.errors)
    survivor = container(snap, kept_id)
    assert survivor.errors == [] and cpu_ns(survivor) > 0
    assert cpu_ns(pod(snap, uid)) >= cpu_ns(survivor)


NS_AGENT = """
import json, sys
from extractor.hostpaths import HostPaths
from extractor.scanner import take_snapshot
snap = take_snapshot(HostPaths(proc_root="/proc", cgroup_root="/sys/fs/cgroup"))
with open("/proc/self/cgroup") as f:
    own = f.read()
print(json.dumps({"own": own, "snapshot": snap.model_dump(mode="json")}))
"""


def test_private_cgroup_namespace_paths_resolve_to_host_paths(v1_tree: KubeTree) -> None:
    """The agent in its own cgroup namespace (as a pod gets on v2 nodes) sees other
    containers as ``/../../…`` paths; the pass still finds their host cgroups."""
    import json
    import subprocess
    import sys

    b = burn_in_container(v1_tree, 0.05)
    agent = v1_tree.container_path(pod_uid(), container_id())
    v1_tree.make(agent)
    joins = " ".join(f"{v1_tree.directory(k, agent)}/cgroup.procs" for k in v1_tree.mounts)
    script = f'for f in {joins}; do echo $$ > "$f"; done; exec unshare --cgroup "$@"'
    out = subprocess.run(
        ["sh", "-c", script, "sh", sys.executable, "-c", NS_AGENT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert "cpuacct:/\n" in result["own"]  # really inside a private namespace
    snap = Snapshot.model_validate(result["snapshot"])
    c = container(snap, b.cid)
    assert c.usage is not None and c.usage.cgroup == v1_tree.container_path(b.uid, b.cid)
    acct = v1_tree.directory("cpuacct", v1_tree.container_path(b.uid, b.cid))
    assert cpu_ns(c) == read_int(f"{acct}/cpuacct.usage")
    assert not snap.errors


@pytest.fixture
def open_files() -> Iterator[None]:
    """The soft descriptor limit raised as ``extractor serve`` raises it (under pytest it
    is 1,024: with other suites' pods on the machine a Scanner could then watch only some
    of the processes, not necessarily the test's own), restored afterwards."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    raise_open_files()
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


@pytest.mark.usefixtures("open_files")
def test_known_processes_are_not_reread_until_refresh(v1_tree: KubeTree) -> None:
    """A warm scanner remembers processes through pidfds; a process moved to another
    container is seen there at the latest on the next full refresh."""
    uid, first_id, second_id = pod_uid(), container_id(), container_id()
    worker = v1_tree.spawn(v1_tree.container_path(uid, first_id))
    v1_tree.make(v1_tree.container_path(uid, second_id))
    scanner = Scanner(V1)
    try:
        assert scanner.watch is not None
        scanner.discoverer.refresh_every = 2
        assert container(scanner.take(), first_id).pids == [worker.pid]
        # Watched when the machine's processes fit the descriptors; on a machine running
        # more (other suites' nodes), some are read by path instead, maybe this one.
        budget = scanner.budget
        assert worker.pid in scanner.watch or not budget.everything, budget.describe()
        v1_tree.enter(v1_tree.container_path(uid, second_id), worker.pid)
        passes = [scanner.take() for _ in range(2)]
    finally:
        scanner.close()
    last = passes[-1]
    assert container(last, second_id).pids == [worker.pid]
    assert first_id not in {c.id for c in last.containers}


def test_scanner_releases_every_descriptor_it_kept(v1_tree: KubeTree) -> None:
    """Counter files, pidfds and the kept /proc/<pid>/cgroup files all close, also those
    of processes that exited while watched."""
    uid = pod_uid()
    workers = [v1_tree.spawn(v1_tree.container_path(uid, container_id())) for _ in range(3)]
    before = set(os.listdir("/proc/self/fd"))
    scanner = Scanner(V1)
    try:
        scanner.discoverer.refresh_every = 1  # every pass re-reads through the kept files
        scanner.take()
        assert scanner.watch is not None and len(scanner.watch) > len(workers)
        assert len(os.listdir("/proc/self/fd")) > len(before) + 2 * len(workers)
        workers[0].stop()
        second = scanner.take()
        assert workers[0].pid not in {p for c in second.containers for p in c.pids}
        assert workers[1].pid in {p for c in second.containers for p in c.pids}
    finally:
        scanner.close()
    # Nothing new is left open (the stopped worker's own pipes are closed, too).
    assert set(os.listdir("/proc/self/fd")) <= before


def test_extract_command_prints_the_pass_as_json(
    v1_tree: KubeTree, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from extractor.commands.extract import run_extract
    from runtime_insights.cli import build_parser

    b = burn_in_container(v1_tree, 0.05)
    args = build_parser().parse_args(["extract", "--format", "json", "--no-fingerprints"])
    assert run_extract(args) == 0
    document = json.loads(capsys.readouterr().out)
    pods = [p for ns in document["namespaces"].values() for p in ns.values()]
    (pod_view,) = [p for p in pods if p["uid"] == b.uid]
    (view,) = [c for c in pod_view["containers"].values() if c["id"] == b.cid]
    acct = v1_tree.directory("cpuacct", v1_tree.container_path(b.uid, b.cid))
    assert view["cpu"]["totalSeconds"] == read_int(f"{acct}/cpuacct.usage") / 1e9
    assert view["pids"] == [v1_tree.workers[0].pid]
