"""Pressure, OOM kills, block I/O, CFS spec values and pod network on the real kernel.

Each signal is made to happen for real in kubelet-shaped cgroups of the test's own (under
a unique ``/ri-test-*`` prefix): an OOM kill under a tiny memory limit, direct I/O to a
file on a block device, CPU contention between two processes pinned to one CPU, traffic
over a veth pair between two network namespaces the test creates. Expected values are
read from the kernel in the test (the cgroup files, ``ip -s -j link`` over netlink) and
must equal what the pass reports. This machine is cgroup hybrid: pressure lives in the
cgroup2 hierarchy at /sys/fs/cgroup/unified, the other counters in the v1 controllers;
tests that need a cgroup2 controller the machine binds to v1 (memory, io) skip, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from extractor.hostpaths import HostPaths
from extractor.netdev import NetworkReader
from extractor.scanner import STAMP_KEPT_READS, STAMP_KEPT_SECONDS, Scanner, take_snapshot
from hostfs import Moment, now
from tests.support.kernel import (
    UNIFIED,
    KubeTree,
    Worker,
    container_id,
    hybrid_mounts,
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

HYBRID = HostPaths(proc_root="/proc", cgroup_root="/sys/fs/cgroup")
V2 = HostPaths(proc_root="/proc", cgroup_root=UNIFIED)


@pytest.fixture
def hybrid() -> Iterator[KubeTree]:
    tree = KubeTree(hybrid_mounts())
    yield tree
    tree.cleanup()


@pytest.fixture
def v2_tree() -> Iterator[KubeTree]:
    tree = KubeTree(v2_mounts())
    yield tree
    tree.cleanup()


def pressure_file(path: str) -> tuple[int, int | None]:
    """(some, full) totals in ns, parsed here independently of the extractor."""
    totals: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            kind, *fields = line.split()
            totals[kind] = int(dict(x.split("=") for x in fields)["total"]) * 1000
    return totals["some"], totals.get("full")


def unified_has(controller: str) -> bool:
    with open(f"{UNIFIED}/cgroup.controllers") as f:
        return controller in f.read().split()


# -- pressure stall information ---------------------------------------------------------


def contend(workers: list[Worker], seconds: float) -> None:
    """Both workers burn at once on CPU 0, so each waits while the other runs."""
    for w in workers:
        os.sched_setaffinity(w.pid, {0})
    for w in workers:
        assert w.proc.stdin is not None
        w.proc.stdin.write(f"burn {seconds}\n")
        w.proc.stdin.flush()
    for w in workers:
        assert w.proc.stdout is not None
        int(w.proc.stdout.readline())
        w.wait_idle()


def test_hybrid_pressure_from_the_unified_directory(hybrid: KubeTree) -> None:
    """Two processes contending for one CPU stall each other: cpu ``some`` grows. On a
    hybrid node the pass reads it from the container's and the pod's directory in the
    cgroup2 hierarchy, in ns, equal to the kernel's totals."""
    uid, cid = pod_uid(), container_id()
    path = hybrid.container_path(uid, cid)
    workers = [hybrid.spawn(path), hybrid.spawn(path)]
    contend(workers, 0.3)
    snap = take_snapshot(HYBRID)
    c, p = container(snap, cid), pod(snap, uid)
    for usage, directory in (
        (c.usage, hybrid.directory("", path)),
        (p.usage, hybrid.directory("", hybrid.pod_path(uid))),
    ):
        assert usage is not None and usage.pressure is not None
        got = usage.pressure
        assert (got.cpu_some_ns, got.cpu_full_ns) == pressure_file(f"{directory}/cpu.pressure")
        assert (got.memory_some_ns, got.memory_full_ns) == pressure_file(
            f"{directory}/memory.pressure"
        )
        assert (got.io_some_ns, got.io_full_ns) == pressure_file(f"{directory}/io.pressure")
    assert c.usage is not None and c.usage.pressure is not None
    assert c.usage.pressure.cpu_some_ns is not None
    assert c.usage.pressure.cpu_some_ns > 50_000_000  # 0.3 s each on one CPU: ≥ 0.05 s waited
    assert c.errors == [] and p.errors == []


def test_v2_pressure_and_no_files_of_absent_controllers(v2_tree: KubeTree) -> None:
    """A pure v2 tree (this machine's cgroup2 hierarchy as the root): pressure from the
    cgroup's own directory; memory, io and OOM counters stay empty without their
    controllers, and that is no error."""
    uid, cid = pod_uid(), container_id()
    path = v2_tree.container_path(uid, cid)
    contend([v2_tree.spawn(path), v2_tree.spawn(path)], 0.2)
    snap = take_snapshot(V2)
    c = container(snap, cid)
    assert c.usage is not None and c.usage.pressure is not None
    some, full = pressure_file(f"{v2_tree.directory('', path)}/cpu.pressure")
    assert (c.usage.pressure.cpu_some_ns, c.usage.pressure.cpu_full_ns) == (some, full)
    assert some > 0
    if not unified_has("memory"):
        assert c.usage.memory is None
    if not unified_has("io"):
        assert c.usage.block_io is None
    assert c.errors == []


def test_pure_v1_has_no_pressure(tmp_path: Path) -> None:
    """A root holding only v1 controllers (symlinks to this machine's): no cgroup2, no
    pressure, and everything else as before."""
    tree = KubeTree(v1_mounts())
    root = tmp_path / "cgroup"
    root.mkdir()
    for controller, mount in tree.mounts.items():
        (root / controller).symlink_to(mount)
    try:
        uid, cid = pod_uid(), container_id()
        tree.spawn(tree.container_path(uid, cid)).burn(0.05)
        snap = take_snapshot(HostPaths(proc_root="/proc", cgroup_root=str(root)))
    finally:
        tree.cleanup()
    assert snap.cgroup_version == "v1"
    c = container(snap, cid)
    assert c.usage is not None and c.usage.cpu is not None and c.usage.pressure is None
    assert c.usage.memory is not None and c.usage.memory.oom_kills == 0
    assert c.errors == []


# -- OOM kills ----------------------------------------------------------------------------


def test_v1_oom_kill_under_a_tiny_limit(hybrid: KubeTree) -> None:
    """A process allocating past its container's 16 MiB headroom is killed by the kernel's
    OOM killer; the container's ``oom_kill`` counts it (v1 counts in the victim's own
    cgroup only, so the pod's own count stays the kernel's 0), and a sibling process keeps
    the container alive to be seen."""
    uid, cid = pod_uid(), container_id()
    path = hybrid.container_path(uid, cid)
    survivor = hybrid.spawn(path)
    victim = hybrid.spawn(path)
    mem = hybrid.directory("memory", path)
    limit = read_int(f"{mem}/memory.usage_in_bytes") + (16 << 20)
    with open(f"{mem}/memory.limit_in_bytes", "w") as f:
        f.write(str(limit))
    if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):  # no way around it by swap
        with open(f"{mem}/memory.memsw.limit_in_bytes", "w") as f:
            f.write(str(limit))
    assert victim.ask("alloc 64") == ""  # killed mid-allocation: its stdout closes
    assert victim.proc.wait(10) == -9
    survivor.wait_idle()
    snap = take_snapshot(HYBRID)
    c, p = container(snap, cid), pod(snap, uid)
    assert c.pids == [survivor.pid]
    assert c.usage is not None and c.usage.memory is not None
    oom = read_keyed(f"{mem}/memory.oom_control")
    assert oom["oom_kill"] == 1
    assert c.usage.memory.oom_kills == oom["oom_kill"]
    assert c.usage.memory.limit_bytes == limit
    assert p.usage is not None and p.usage.memory is not None
    pod_oom = read_keyed(f"{hybrid.directory('memory', hybrid.pod_path(uid))}/memory.oom_control")
    assert p.usage.memory.oom_kills == pod_oom["oom_kill"] == 0
    assert c.usage.pressure is not None and c.usage.pressure.memory_some_ns is not None
    assert c.usage.pressure.memory_some_ns > 0  # it stalled in reclaim before the kill


@pytest.mark.skipif(not unified_has("memory"), reason="memory controller bound to cgroup v1")
def test_v2_oom_kill_counts_in_container_and_pod(v2_tree: KubeTree) -> None:
    """v2 memory.events is hierarchical: the kill shows in the container and its pod."""
    uid, cid = pod_uid(), container_id()
    path = v2_tree.container_path(uid, cid)
    survivor = v2_tree.spawn(path)
    victim = v2_tree.spawn(path)
    d = v2_tree.directory("", path)
    with open(f"{d}/memory.max", "w") as f:
        f.write(str(read_int(f"{d}/memory.current") + (16 << 20)))
    with open(f"{d}/memory.swap.max", "w") as f:
        f.write("0")
    assert victim.ask("alloc 64") == ""
    victim.proc.wait(10)
    survivor.wait_idle()
    snap = take_snapshot(V2)
    c, p = container(snap, cid), pod(snap, uid)
    events = read_keyed(f"{d}/memory.events")
    assert events["oom_kill"] >= 1
    assert c.usage is not None and c.usage.memory is not None
    assert c.usage.memory.oom_kills == events["oom_kill"]
    assert p.usage is not None and p.usage.memory is not None
    assert p.usage.memory.oom_kills == events["oom_kill"]


# -- block I/O ------------------------------------------------------------------------------


def whole_disk(path: str) -> str:
    """``major:minor`` of the disk holding ``path`` (a partition's parent disk)."""
    dev = os.stat(path).st_dev
    number = f"{os.major(dev)}:{os.minor(dev)}"
    if os.major(dev) == 0:
        pytest.skip(f"{path} is on no block device ({number})")
    sys_dir = f"/sys/dev/block/{number}"
    if os.path.exists(f"{sys_dir}/partition"):
        with open(f"{os.path.realpath(sys_dir)}/../dev") as f:
            number = f.read().strip()
    return number


def rwstat(path: str, device: str) -> tuple[int, int]:
    """(Read, Write) of ``device`` in a v1 blkio statistics file."""
    values: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == device:
                values[parts[1]] = int(parts[2])
    return values.get("Read", 0), values.get("Write", 0)


def test_v1_block_io_of_direct_writes(hybrid: KubeTree, tmp_path: Path) -> None:
    """4 MiB written with O_DIRECT and fsync, 1 MiB read back: the container's and the
    pod's throttle statistics (recursive: the pod's include its container) count them,
    and the pass reports exactly the kernel's bytes and operations, with the device's
    name. A limit far above any real rate is set on the container first: blk-throttle
    counts a disk's I/O only once some cgroup has a limit on it (Linux ≥ 6.9)."""
    uid, cid = pod_uid(), container_id()
    path = hybrid.container_path(uid, cid)
    target = str(tmp_path / "direct.bin")
    device = whole_disk(str(tmp_path))
    hybrid.make(path)
    blkio = hybrid.directory("blkio", path)
    with open(f"{blkio}/blkio.throttle.write_bps_device", "w") as f:
        f.write(f"{device} {1 << 40}")
    worker = hybrid.spawn(path)
    assert worker.ask(f"directio {target} 4") == "ok"
    worker.wait_idle()
    snap = take_snapshot(HYBRID)
    major, minor = (int(x) for x in device.split(":"))
    for usage, directory in (
        (container(snap, cid).usage, blkio),
        (pod(snap, uid).usage, hybrid.directory("blkio", hybrid.pod_path(uid))),
    ):
        assert usage is not None and usage.block_io is not None
        (entry,) = [d for d in usage.block_io if (d.major, d.minor) == (major, minor)]
        assert (entry.read_bytes, entry.write_bytes) == rwstat(
            f"{directory}/blkio.throttle.io_service_bytes_recursive", device
        )
        assert (entry.reads, entry.writes) == rwstat(
            f"{directory}/blkio.throttle.io_serviced_recursive", device
        )
        assert entry.write_bytes >= 4 << 20 and entry.read_bytes >= 1 << 20
        assert entry.writes >= 4 and entry.reads >= 1
    with open(f"/sys/dev/block/{device}/uevent") as f:
        name = next(line[8:].strip() for line in f if line.startswith("DEVNAME="))
    assert snap.block_devices[device] == name


# -- CFS quota and period -------------------------------------------------------------------


def test_v1_cfs_quota_and_period_as_spec_values(hybrid: KubeTree) -> None:
    """The quota and period in µs as the kernel holds them; no quota (-1) is None."""
    uid, limited, free = pod_uid(), container_id(), container_id()
    limited_path = hybrid.container_path(uid, limited)
    hybrid.make(limited_path)
    sched = hybrid.directory("cpu", limited_path)
    with open(f"{sched}/cpu.cfs_period_us", "w") as f:
        f.write("50000")
    with open(f"{sched}/cpu.cfs_quota_us", "w") as f:
        f.write("25000")
    hybrid.spawn(limited_path)
    hybrid.spawn(hybrid.container_path(uid, free))
    snap = take_snapshot(HYBRID)
    cpu = container(snap, limited).usage.cpu  # type: ignore[union-attr]
    assert cpu is not None
    assert (
        (cpu.quota_us, cpu.period_us)
        == (
            read_int(f"{sched}/cpu.cfs_quota_us"),
            read_int(f"{sched}/cpu.cfs_period_us"),
        )
        == (25000, 50000)
    )
    other = container(snap, free).usage
    assert other is not None and other.cpu is not None
    free_dir = hybrid.directory("cpu", hybrid.container_path(uid, free))
    assert read_int(f"{free_dir}/cpu.cfs_quota_us") == -1
    assert other.cpu.quota_us is None
    assert other.cpu.period_us == read_int(f"{free_dir}/cpu.cfs_period_us")


# -- details re-read in rotation -------------------------------------------------------------

STEP = STAMP_KEPT_SECONDS + 50.0
"""Between passes, where no re-reading is to keep an earlier stamp."""


def passes_at(walls: Iterable[float]) -> Callable[[], Moment]:
    """A Scanner clock whose passes happen at these wall times (the boot clock real)."""
    times = iter(walls)

    def clock() -> Moment:
        return Moment(wall=next(times), boot=now().boot)

    return clock


def test_details_are_reread_every_few_passes_and_say_when(hybrid: KubeTree) -> None:
    """A kept Scanner reads CPU and memory usage on every pass and the details every
    ``details_every`` passes: in between they stand as last read, stamped with that
    pass's time; a fresh reading has no stamp (read with the rest). The passes are
    ``STEP`` apart, so no re-reading keeps an earlier stamp."""
    uid, cid = pod_uid(), container_id()
    path = hybrid.container_path(uid, cid)
    worker = hybrid.spawn(path)
    mem = hybrid.directory("memory", path)
    clock = passes_at(1000.0 + STEP * i for i in range(7))
    scanner = Scanner(HYBRID, details_every=3, clock=clock)
    try:
        first = container(scanner.take(), cid)
        assert first.usage is not None and first.usage.details_at is None
        assert worker.ask("alloc 48") == "ok"
        worker.wait_idle()
        passes = [container(scanner.take(), cid) for _ in range(1, 7)]
        everything = scanner.budget.everything
    finally:
        scanner.close()
    stamps = [c.usage.details_at for c in passes if c.usage is not None]
    assert len(stamps) == 6
    times = [1000.0 + STEP * i for i in range(1, 7)]
    reread = [t for t, at in zip(times, stamps, strict=True) if at == t]
    if everything:  # else some files are read by path, the details with the rest
        assert len(reread) == 2 and reread[1] - reread[0] == 3 * STEP  # every third pass
    peak = read_int(f"{mem}/memory.max_usage_in_bytes")
    for c in passes:
        assert c.usage is not None and c.usage.memory is not None
        assert c.usage.memory.working_set_bytes is not None
        assert c.usage.memory.working_set_bytes >= 48 << 20  # every pass: fresh
        at = c.usage.details_at
        if at is None or at > 1000.0:  # read with the rest, or re-read after the allocation
            assert c.usage.memory.peak_bytes == peak
        else:  # the first pass's, read before it (and stamped so)
            assert at == 1000.0
            assert c.usage.memory.peak_bytes is not None
            assert c.usage.memory.peak_bytes < 48 << 20


def test_details_rotate_for_a_cgroup_beyond_the_descriptor_budget(hybrid: KubeTree) -> None:
    """With no descriptor to keep (a node larger than the budget), a cgroup's files are
    read by path, and still the details only every ``details_every`` passes."""
    cid = container_id()
    hybrid.spawn(hybrid.container_path(pod_uid(), cid))
    scanner = Scanner(
        HYBRID, keep_open=0, details_every=3, clock=passes_at(1000.0 + STEP * i for i in range(7))
    )
    try:
        stamps = [container(scanner.take(), cid).usage for _ in range(7)]
        assert len(scanner.kept) == 0 and len(scanner.kept_details) == 0
    finally:
        scanner.close()
    at = [u.details_at if u is not None else -1.0 for u in stamps]
    assert at[0] is None  # the first reading: with the rest
    reread = [1000.0 + STEP * i for i in range(1, 7) if at[i] == 1000.0 + STEP * i]
    assert len(reread) == 2 and reread[1] - reread[0] == 3 * STEP
    assert all(
        a is not None and a < 1000.0 + STEP * i for i, a in enumerate(at) if i and a not in reread
    )


# -- pod network ---------------------------------------------------------------------------


@contextlib.contextmanager
def veth_between(a: int, b: int) -> Iterator[tuple[str, str]]:
    """A veth pair with one end in the network namespace of process ``a`` and the other
    in ``b``'s, both named eth0 there, 10.254.x.1/.2, IPv4 only; the kernel removes it
    with the namespaces, and it is deleted here if it never got there."""
    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("iproute2 or util-linux nsenter missing")
    tag = secrets.token_hex(4)
    ends = (f"ri{tag}a", f"ri{tag}b")
    net = f"10.254.{secrets.randbelow(250) + 1}"
    try:
        subprocess.run(
            ["ip", "link", "add", ends[0], "type", "veth", "peer", "name", ends[1]], check=True
        )
        for end, pid, host in ((ends[0], a, 1), (ends[1], b, 2)):
            subprocess.run(["ip", "link", "set", end, "netns", str(pid)], check=True)
            inside = ["nsenter", "-t", str(pid), "-n", "ip"]
            subprocess.run([*inside, "link", "set", end, "name", "eth0"], check=True)
            subprocess.run([*inside, "addr", "add", f"{net}.{host}/30", "dev", "eth0"], check=True)
            # No IPv6 on the link: its autoconfiguration would send packets of its own
            # while counters are compared.
            quiet = "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"
            subprocess.run(["nsenter", "-t", str(pid), "-n", "sh", "-c", quiet], check=False)
            subprocess.run([*inside, "link", "set", "eth0", "up"], check=True)
        yield f"{net}.1", f"{net}.2"
    finally:
        for end in ends:
            subprocess.run(["ip", "link", "del", end], capture_output=True, check=False)


def link_stats(pid: int) -> dict[str, int]:
    """eth0's counters in the namespace of ``pid``, from the kernel over netlink."""
    out = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ip", "-s", "-j", "link", "show", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stats = json.loads(out)[0]["stats64"]
    return {
        "rx_bytes": stats["rx"]["bytes"],
        "rx_packets": stats["rx"]["packets"],
        "rx_errors": stats["rx"]["errors"],
        "rx_dropped": stats["rx"]["dropped"],
        "tx_bytes": stats["tx"]["bytes"],
        "tx_packets": stats["tx"]["packets"],
        "tx_errors": stats["tx"]["errors"],
        "tx_dropped": stats["tx"]["dropped"],
    }


SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    s.sendto(b"x" * 1000, (sys.argv[1], 9))
"""


def settle(pid: int) -> dict[str, int]:
    """eth0's counters once they stand still (the peer's ICMP answers arrive late)."""
    last = link_stats(pid)
    for _ in range(100):
        time.sleep(0.05)
        now = link_stats(pid)
        if now == last:
            return now
        last = now
    raise AssertionError("eth0 counters never settled")


def test_pod_network_from_its_namespace_over_a_veth_pair(hybrid: KubeTree) -> None:
    """The pod's sandbox holds a network namespace of its own, linked by a veth pair to a
    peer namespace; 50 datagrams of 1000 bytes go out (the closed port answers each with
    ICMP). The pod's eth0 counters are exactly the kernel's; loopback is left out; a pod
    on the host's network is marked so, without counters."""
    uid, sandbox, app = pod_uid(), container_id(), container_id()
    pause = hybrid.spawn(hybrid.container_path(uid, sandbox), ("unshare", "--net"))
    assert pause.ask("comm pause") == "ok"  # running, so in its own namespace by now
    hybrid.spawn(hybrid.container_path(uid, app))  # an app container (host network here)
    peer = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    host_uid, host_cid = pod_uid(), container_id()
    hybrid.spawn(hybrid.container_path(host_uid, host_cid))
    try:
        time.sleep(0.1)  # unshare has exec'd sleep
        with veth_between(pause.pid, peer.pid) as (_, there):
            subprocess.run(
                ["nsenter", "-t", str(pause.pid), "-n", sys.executable, "-c", SEND, there, "50"],
                check=True,
            )
            expected = settle(pause.pid)
            snap = take_snapshot(HYBRID)
    finally:
        peer.kill()
        peer.wait()
    p = pod(snap, uid)
    assert p.host_network is False and p.network is not None
    (eth0,) = p.network  # lo is not reported
    assert eth0.name == "eth0"
    assert eth0.model_dump(exclude={"name"}) == expected
    assert eth0.tx_packets >= 50 and eth0.tx_bytes >= 50 * 1028
    assert eth0.rx_packets >= 1  # the peer's port unreachable answers
    other = pod(snap, host_uid)
    assert other.host_network is True and other.network is None
    assert p.errors == [] and other.errors == []


READ_WITHOUT_CAPABILITIES = """
import json, sys
from extractor.netdev import NetworkReader
with open("/proc/self/status") as f:
    caps = {k: v.strip() for k, _, v in (l.partition(":") for l in f) if k.startswith("Cap")}
reader = NetworkReader("/proc", 4)
got = reader.read(int(sys.argv[1]), int(sys.argv[2]))
print(json.dumps({"caps": caps, "host": got.host_network, "error": got.error,
                  "interfaces": [i.model_dump() for i in got.interfaces or []]}))
"""


def test_network_needs_no_capability(hybrid: KubeTree) -> None:
    """Read by uid 0 with every capability dropped (setpriv), i.e. without even the two
    the DaemonSet adds: a pod's net/dev needs hostPID and nothing else, and reads the same
    as with every capability."""
    if shutil.which("setpriv") is None:
        pytest.skip("util-linux setpriv missing")
    uid, cid = pod_uid(), container_id()
    worker = hybrid.spawn(hybrid.container_path(uid, cid), ("unshare", "--net"))
    assert worker.ask("comm pause") == "ok"
    peer = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    with open(f"/proc/{worker.pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
    try:
        time.sleep(0.1)
        with veth_between(worker.pid, peer.pid) as (_, there):
            subprocess.run(
                ["nsenter", "-t", str(worker.pid), "-n", sys.executable, "-c", SEND, there, "5"],
                check=True,
            )
            settle(worker.pid)
            out = subprocess.run(
                [
                    *drop,
                    sys.executable,
                    "-c",
                    READ_WITHOUT_CAPABILITIES,
                    str(worker.pid),
                    str(ticks),
                ],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            root = NetworkReader("/proc", 4)
            try:
                as_root = root.read(worker.pid, ticks)
            finally:
                root.close()
    finally:
        peer.kill()
        peer.wait()
    got = json.loads(out.stdout)
    assert got["caps"]["CapEff"] == got["caps"]["CapBnd"] == "0000000000000000"
    assert got["host"] is False and got["error"] is None
    assert as_root.interfaces is not None and len(as_root.interfaces) == 1
    assert got["interfaces"] == [i.model_dump() for i in as_root.interfaces]
    assert got["interfaces"][0]["tx_packets"] >= 5


def test_rss_cache_and_the_sandboxes_cgroup(hybrid: KubeTree) -> None:
    """RSS and cache from the same memory.stat read as the working set (v1: the
    hierarchical ``total_`` keys, as cAdvisor reads them); a sandbox, whose usage is not
    read, still names its cgroup (the kubelet's cAdvisor series carry it)."""
    uid, pause_id, app_id = pod_uid(), container_id(), container_id()
    pause = hybrid.spawn(hybrid.container_path(uid, pause_id))
    assert pause.ask("comm pause") == "ok"
    app = hybrid.spawn(hybrid.container_path(uid, app_id))
    assert app.ask("alloc 32") == "ok"
    app.wait_idle()
    snap = take_snapshot(HYBRID)
    stat = read_keyed(
        f"{hybrid.directory('memory', hybrid.container_path(uid, app_id))}/memory.stat"
    )
    c = container(snap, app_id)
    assert c.usage is not None and c.usage.memory is not None
    assert (c.usage.memory.rss_bytes, c.usage.memory.cache_bytes) == (
        stat["total_rss"],
        stat["total_cache"],
    )
    assert c.usage.memory.rss_bytes is not None and c.usage.memory.rss_bytes >= 32 << 20
    sandbox = container(snap, pause_id)
    assert sandbox.sandbox and sandbox.usage is None
    assert sandbox.cgroup == hybrid.container_path(uid, pause_id)
    assert c.cgroup == c.usage.cgroup == hybrid.container_path(uid, app_id)


def test_pod_network_that_reads_the_same_keeps_its_stamp(hybrid: KubeTree) -> None:
    """The pod's network is read with its cgroup's details (here every pass) and stamped
    ``network_at``; a reading that finds the counters of the last keeps that one's stamp
    (so a quiet pod's record does not change) until the details are restamped (one
    re-reading in ``STAMP_KEPT_READS``), traffic restamps it, and so does a reading
    ``STAMP_KEPT_SECONDS`` after the stamp."""
    uid, sandbox = pod_uid(), container_id()
    pause = hybrid.spawn(hybrid.container_path(uid, sandbox), ("unshare", "--net"))
    assert pause.ask("comm pause") == "ok"
    peer = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    times = [1000.0 + i for i in range(STAMP_KEPT_READS + 2)] + [1160.0 + STAMP_KEPT_SECONDS]
    scanner = Scanner(HYBRID, details_every=1, clock=passes_at(times))
    try:
        time.sleep(0.1)  # unshare has exec'd sleep
        with veth_between(pause.pid, peer.pid) as (_, there):
            settle(pause.pid)
            quiet = [pod(scanner.take(), uid) for _ in range(STAMP_KEPT_READS + 1)]
            subprocess.run(
                ["nsenter", "-t", str(pause.pid), "-n", sys.executable, "-c", SEND, there, "5"],
                check=True,
            )
            expected = settle(pause.pid)
            busy = pod(scanner.take(), uid)
            late = pod(scanner.take(), uid)
    finally:
        scanner.close()
        peer.kill()
        peer.wait()
    assert quiet[0].network_at == 1000.0 and quiet[0].network is not None
    assert all(p.network == quiet[0].network for p in quiet)
    stamps = [p.network_at for p in quiet]
    assert len(set(stamps)) == 2  # kept, then restamped with the details once
    for p in quiet[1:]:
        assert p.usage is not None and p.network_at == (p.usage.details_at or 1000.0)
    assert busy.network_at == times[-2] and busy.network is not None
    assert busy.network[0].model_dump(exclude={"name"}) == expected
    assert late.network_at == times[-1] and late.network == busy.network


def test_details_that_read_the_same_keep_their_stamp(hybrid: KubeTree) -> None:
    """A re-reading of the details that finds the values of the last keeps that one's
    stamp, so a quiet container's record stays the same pass after pass (and a poll by
    difference carries nothing for it), except one re-reading in ``STAMP_KEPT_READS``
    (each cgroup in its turn); a change restamps them, and so does a re-reading
    ``STAMP_KEPT_SECONDS`` or more after the stamp."""
    uid, cid = pod_uid(), container_id()
    worker = hybrid.spawn(hybrid.container_path(uid, cid))
    worker.wait_idle()
    every = 3
    quiet_passes = 1 + every * STAMP_KEPT_READS  # the first, then as many re-readings
    times = [1000.0 + i for i in range(quiet_passes + every)]
    times += [times[-1] + STAMP_KEPT_SECONDS + i for i in range(1, every + 1)]
    scanner = Scanner(HYBRID, details_every=every, clock=passes_at(times))
    try:
        usages = [container(scanner.take(), cid).usage for _ in range(quiet_passes)]
        assert worker.ask("alloc 16") == "ok"
        worker.wait_idle()
        usages += [container(scanner.take(), cid).usage for _ in range(2 * every)]
    finally:
        scanner.close()
    stamps = [u.details_at if u is not None else -1.0 for u in usages]
    assert stamps[0] is None  # the first reading: with the rest

    def new_stamps(lo: int, hi: int) -> list[int]:
        """The passes in [lo, hi) that gave the details a stamp of their own time."""
        return [i for i in range(lo, hi) if stamps[i] == times[i]]

    quiet = new_stamps(1, quiet_passes)
    assert len(quiet) == 1  # re-read STAMP_KEPT_READS times the same: restamped once
    (q,) = quiet
    assert stamps[1:q] == [1000.0] * (q - 1)
    assert stamps[q:quiet_passes] == [times[q]] * (quiet_passes - q)
    (changed,) = new_stamps(quiet_passes, quiet_passes + every)  # after the allocation
    assert stamps[quiet_passes:changed] == [times[q]] * (changed - quiet_passes)
    (late,) = new_stamps(quiet_passes + every, len(times))  # too old to keep
    assert stamps[changed:late] == [times[changed]] * (late - changed)
