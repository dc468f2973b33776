"""The node pass over fake /proc and cgroupfs trees: layouts the kernel here cannot show
(v2 memory controller, comma-joined v1 dirs, cgroup namespaces) and faults that are hard
to time on a live system (a pid vanishing mid-pass, PID reuse, garbage files)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from extractor.cgroups.counters import account_v1, account_v2
from extractor.cgroups.layout import CgroupFsError, detect, namespace_base, resolve
from extractor.contract import Fingerprint
from extractor.hostpaths import HostPaths
from extractor.scanner import NodeUnreadable, Scanner, take_snapshot
from hostfs import Moment, ProcReadError, ProcStat, parse_stat, read_cmdline, read_small

BTIME = 1_700_000_000
HZ = os.sysconf("SC_CLK_TCK")


def clock() -> Moment:
    """The fake node's clocks: booted at BTIME, 1000 s ago."""
    return Moment(wall=BTIME + 1000.0, boot=1000.0)


def stat_line(pid: int, comm: str, start_ticks: int) -> str:
    # Fields 3..52 of proc(5) stat; field 22 (starttime) is the 20th after the comm.
    rest = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 30
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


@dataclass
class FakeNode:
    proc: Path
    cg: Path

    @property
    def paths(self) -> HostPaths:
        return HostPaths(proc_root=str(self.proc), cgroup_root=str(self.cg))

    def process(self, pid: int, cgroup: str, start: int, comm: str = "app") -> None:
        d = self.proc / str(pid)
        d.mkdir(exist_ok=True)
        (d / "cgroup").write_text(f"0::{cgroup}\n")
        (d / "stat").write_text(stat_line(pid, comm, start))
        (d / "cmdline").write_bytes(comm.encode() + b"\0")

    def cgroup(self, path: str, **files: str) -> Path:
        d = self.cg / path.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.procs").write_text("")
        for name, text in files.items():
            (d / name.replace("__", ".")).write_text(text)
        return d


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\n")
    cg.mkdir()
    (cg / "cgroup.controllers").write_text("cpu memory pids\n")
    (cg / "cgroup.procs").write_text("")
    return FakeNode(proc, cg)


def v2_files(usage_usec: int, current: int, inactive: int) -> dict[str, str]:
    return {
        "cpu__stat": f"usage_usec {usage_usec}\nuser_usec 7\nsystem_usec 3\n"
        "nr_periods 10\nnr_throttled 2\nthrottled_usec 500\n",
        "memory__current": f"{current}\n",
        "memory__peak": f"{current * 2}\n",
        "memory__stat": f"anon 1\nfile 9\ninactive_file {inactive}\nactive_file 3\n",
        "memory__max": "max\n",
        "pids__current": "2\n",
    }


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), secrets.token_hex(32)


def container_path(uid: str, cid: str) -> str:
    pod = f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"
    return f"/kubepods.slice/kubepods-burstable.slice/{pod}/cri-containerd-{cid}.scope"


def test_v2_memory_files(node: FakeNode) -> None:
    d = node.cgroup("/a", **v2_files(usage_usec=1234, current=10_000, inactive=4_000))
    usage, errors = account_v2(str(d), read_small, "/a")
    assert errors == []
    assert usage.cpu is not None and usage.memory is not None
    assert usage.cpu.usage_ns == 1_234_000 and usage.cpu.user_ns == 7_000
    assert usage.cpu.throttled_ns == 500_000 and usage.cpu.throttled_periods == 2
    assert usage.memory.current_bytes == 10_000 and usage.memory.peak_bytes == 20_000
    assert usage.memory.working_set_bytes == 6_000
    assert usage.memory.limit_bytes is None
    assert usage.pids == 2


def test_v2_working_set_clamped_and_limit_read(node: FakeNode) -> None:
    files = v2_files(usage_usec=1, current=100, inactive=500)
    files["memory__max"] = "4096\n"
    d = node.cgroup("/b", **files)
    usage, _ = account_v2(str(d), read_small, "/b")
    assert usage.memory is not None
    assert usage.memory.working_set_bytes == 0
    assert usage.memory.limit_bytes == 4096


def test_v2_without_memory_controller_or_peak(node: FakeNode) -> None:
    d = node.cgroup("/c", cpu__stat="usage_usec 5\nuser_usec 3\nsystem_usec 2\n")
    (d / "cgroup.procs").write_text("1\n2\n3\n")
    usage, errors = account_v2(str(d), read_small, "/c")
    assert errors == []
    assert usage.memory is None and usage.pids == 3
    assert usage.cpu is not None and usage.cpu.periods is None


def test_garbage_counter_is_an_error_not_a_crash(node: FakeNode) -> None:
    files = v2_files(usage_usec=1, current=100, inactive=0)
    files["memory__peak"] = "lots\n"
    d = node.cgroup("/g", **files)
    usage, errors = account_v2(str(d), read_small, "/g")
    assert usage.memory is not None and usage.memory.peak_bytes is None
    assert any("memory.peak" in e and "not a number" in e for e in errors)


def test_pass_over_fake_node(node: FakeNode) -> None:
    uid, cid = ids()
    path = container_path(uid, cid)
    node.cgroup(path, **v2_files(usage_usec=2000, current=50, inactive=10))
    node.cgroup(path.rsplit("/", 1)[0], **v2_files(usage_usec=9000, current=80, inactive=10))
    node.process(10, path, start=500)
    node.process(11, path + "/container", start=300)  # crun's child folds into the scope
    node.process(12, "/system.slice/cron.service", start=100)
    (node.proc / "13").mkdir()  # listed, then gone before its files were read
    (node.proc / "14").mkdir()
    (node.proc / "14" / "cgroup").mkdir()  # unreadable: EISDIR
    snap = take_snapshot(node.paths, clock=clock)
    (c,) = snap.containers
    assert (c.id, c.runtime, c.pod_uid, c.qos) == (cid, "containerd", uid, "burstable")
    assert c.pids == [10, 11]
    assert c.started_at == BTIME + 300 / HZ
    assert c.runtime_seconds == pytest.approx(1000.0 - 300 / HZ)
    assert c.usage is not None and c.usage.cpu is not None and c.usage.cgroup == path
    assert c.usage.cpu.usage_ns == 2_000_000
    (p,) = snap.pods
    assert p.usage is not None and p.usage.cpu is not None
    assert p.usage.cpu.usage_ns == 9_000_000 and p.container_ids == [cid]
    assert any(e.startswith("pid 14:") for e in snap.errors)
    assert not any("13" in e for e in snap.errors)
    assert snap.cgroup_version == "v2"


def test_vanished_cgroup_is_a_container_error(node: FakeNode) -> None:
    uid, cid = ids()
    node.process(20, container_path(uid, cid), start=5)
    (c,) = take_snapshot(node.paths).containers
    assert c.usage is not None and c.usage.cpu is None
    assert any("cgroup vanished" in e for e in c.errors)
    (p,) = take_snapshot(node.paths).pods
    assert any("vanished" in e for e in p.errors)


def test_pid_reuse_is_not_attributed_to_the_old_container(node: FakeNode) -> None:
    uid, old = ids()
    new = secrets.token_hex(32)
    node.process(30, container_path(uid, old), start=100)
    scanner = Scanner(node.paths, clock=clock)
    try:
        first = scanner.take()
        # pid 30 exits; the number comes back as a process of another container.
        node.process(30, container_path(uid, new), start=900)
        second = scanner.take()
    finally:
        scanner.close()
    assert [c.id for c in first.containers] == [old]
    (c,) = second.containers
    assert c.id == new and c.started_at == BTIME + 900 / HZ


def test_malformed_stat_is_reported(node: FakeNode) -> None:
    uid, cid = ids()
    node.process(40, container_path(uid, cid), start=1)
    (node.proc / "40" / "stat").write_text("40 (app S 1 2\n")
    snap = take_snapshot(node.paths)
    assert snap.containers == []
    assert any("pid 40: malformed stat" in e for e in snap.errors)


def test_parse_stat_comm_with_spaces_and_parens() -> None:
    stat = parse_stat(7, stat_line(7, "a) (b c", 4242).encode())
    assert (stat.comm, stat.start_ticks) == ("a) (b c", 4242)
    with pytest.raises(ProcReadError):
        parse_stat(7, b"garbage")


def test_read_cmdline_without_trailing_nul(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "cmdline").write_bytes(b"/pause\0--flag\0x")
    assert read_cmdline(str(tmp_path), 5) == ["/pause", "--flag", "x"]
    assert read_cmdline(str(tmp_path), 6) is None
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cmdline").write_bytes(b"")  # kernel threads and zombies
    assert read_cmdline(str(tmp_path), 7) == []


@dataclass
class Labels:
    runtime: str | None = "containerd"
    namespace: str | None = "shop"
    pod_name: str | None = "web-0"
    pod_uid: str | None = None
    container_name: str | None = "web"
    container_type: str | None = "container"
    sandbox_id: str | None = None
    image: str | None = "nginx:1.27"


def test_runtime_labels_fill_in_and_mark_sandboxes(node: FakeNode) -> None:
    uid, app = ids()
    pause = secrets.token_hex(32)
    pod_path = f"/kubepods/burstable/pod{uid}"
    for cid, pid in ((app, 50), (pause, 51)):
        node.cgroup(f"{pod_path}/{cid}", **v2_files(usage_usec=1, current=1, inactive=0))
        node.process(pid, f"{pod_path}/{cid}", start=pid)
    node.cgroup(pod_path, **v2_files(usage_usec=77, current=1, inactive=0))
    labels = {app: Labels(sandbox_id=pause), pause: Labels(container_type="sandbox")}
    seen: list[tuple[str, list[int]]] = []

    def fingerprint(
        cid: str, pids: list[int], stats: Sequence[ProcStat] | None = None
    ) -> Fingerprint:
        seen.append((cid, pids))
        assert stats is not None and [(s.pid, s.start_ticks) for s in stats] == [(50, 50)]
        return Fingerprint(os="debian")

    snap = take_snapshot(node.paths, identify=labels.get, fingerprint=fingerprint)
    by_id = {c.id: c for c in snap.containers}
    assert by_id[app].runtime == "containerd"  # a bare id alone says "unknown"
    assert (by_id[app].namespace, by_id[app].name, by_id[app].pod_name) == ("shop", "web", "web-0")
    assert by_id[app].sandbox_id == pause and by_id[app].image == "nginx:1.27"
    assert by_id[pause].sandbox and by_id[pause].usage is None
    assert by_id[pause].fingerprint is None and seen == [(app, [50])]
    (p,) = snap.pods
    assert (p.namespace, p.name) == ("shop", "web-0")
    assert p.usage is not None and p.usage.cpu is not None and p.usage.cpu.usage_ns == 77_000


def test_pause_recognised_without_labels(node: FakeNode) -> None:
    uid, by_comm = ids()
    by_cmdline = secrets.token_hex(32)
    node.process(60, container_path(uid, by_comm), start=1, comm="pause")
    node.process(61, container_path(uid, by_cmdline), start=1, comm="sh")
    (node.proc / "61" / "cmdline").write_bytes(b"/pause\0")
    snap = take_snapshot(node.paths)
    assert all(c.sandbox for c in snap.containers) and len(snap.containers) == 2


def test_plugin_failures_become_errors(node: FakeNode) -> None:
    uid, cid = ids()
    node.process(70, container_path(uid, cid), start=1)

    def identify(cid: str) -> Labels | None:
        raise ValueError("bad config.json")

    def fingerprint(
        cid: str, pids: list[int], stats: Sequence[ProcStat] | None = None
    ) -> Fingerprint:
        raise RuntimeError("detector bug")

    (c,) = take_snapshot(node.paths, identify=identify, fingerprint=fingerprint).containers
    assert any("bad config.json" in e for e in c.errors)
    assert c.fingerprint is not None and c.fingerprint.error is not None
    assert "detector bug" in c.fingerprint.error


def test_detect_v1_comma_joined_and_symlinks(tmp_path: Path) -> None:
    for name in ("cpu,cpuacct", "memory", "pids", "systemd", "unified"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    layout = detect(str(tmp_path))
    assert layout.version == "hybrid"
    assert layout.unified == str(tmp_path / "unified")
    assert layout.hierarchies() == ("cpuacct", "cpu", "memory", "pids")
    assert layout.directory("cpuacct", "/kubepods/x") == str(tmp_path / "cpu,cpuacct/kubepods/x")
    (tmp_path / "unified" / "cgroup.procs").unlink()
    assert detect(str(tmp_path)).version == "v1"


def test_detect_refuses_what_is_no_cgroupfs(tmp_path: Path) -> None:
    with pytest.raises(CgroupFsError, match="no cgroup filesystem"):
        detect(str(tmp_path))
    with pytest.raises(CgroupFsError, match="not a directory"):
        detect(str(tmp_path / "nowhere"))
    with pytest.raises(NodeUnreadable):
        Scanner(HostPaths(proc_root=str(tmp_path), cgroup_root=str(tmp_path)))


def test_resolve_namespace_relative_paths() -> None:
    base = "/kubepods.slice/kubepods-besteffort.slice/pod-a.slice/agent.scope"
    assert resolve("/", "/kubepods/x") == "/kubepods/x"
    assert resolve(base, "/") == base
    assert resolve(base, "/../../../kubepods-burstable.slice/b") == (
        "/kubepods.slice/kubepods-burstable.slice/b"
    )
    assert resolve(base, "../../x") == "/kubepods.slice/kubepods-besteffort.slice/x"


def test_namespace_base_found_from_init_depth(node: FakeNode) -> None:
    agent = "/kubepods.slice/kubepods-besteffort.slice/agent.scope"
    node.cgroup("/kubepods.slice/kubepods-besteffort.slice/other.scope")
    node.cgroup(agent)
    (node.cg / agent.strip("/") / "cgroup.procs").write_text("5\n42\n")
    node.process(1, "/../../../init.scope", start=1)
    node.process(42, "/", start=2)
    os.symlink("42", node.proc / "self")
    layout = detect(str(node.cg))
    assert namespace_base(layout, "", str(node.proc)) == agent
    (node.proc / "1" / "cgroup").write_text("0::/init.scope\n")
    assert namespace_base(layout, "", str(node.proc)) == "/"


def v1_dirs(tmp_path: Path, **files: str) -> dict[str, str]:
    dirs = {}
    for controller in ("cpuacct", "cpu", "memory", "blkio"):
        d = tmp_path / controller / "ctr"
        d.mkdir(parents=True)
        dirs[controller] = str(d)
    for name, text in files.items():
        controller = name.split("__")[0]
        (tmp_path / controller / "ctr" / name.replace("__", ".")).write_text(text)
    return dirs


def test_v1_user_system_sources_in_order_of_precision(tmp_path: Path) -> None:
    dirs = v1_dirs(
        tmp_path,
        cpuacct__usage="900\n",
        cpuacct__usage_all="cpu user system\n0 100 20\n1 300 40\n",
        cpuacct__usage_user="1\n",
        cpuacct__usage_sys="2\n",
        cpuacct__stat="user 3\nsystem 4\n",
        cpu__stat="nr_periods 5\nnr_throttled 1\nthrottled_time 777\n",
        memory__usage_in_bytes="5000\n",
        memory__max_usage_in_bytes="6000\n",
        memory__limit_in_bytes="9223372036854771712\n",
        memory__stat="cache 10\ninactive_file 999\ntotal_inactive_file 1000\n",
    )
    usage, errors = account_v1(dirs, read_small, "/ctr", HZ)
    assert errors == []
    assert usage.cpu is not None and usage.memory is not None
    assert (usage.cpu.usage_ns, usage.cpu.user_ns, usage.cpu.system_ns) == (900, 400, 60)
    assert (usage.cpu.throttled_ns, usage.cpu.periods, usage.cpu.throttled_periods) == (777, 5, 1)
    assert usage.memory.working_set_bytes == 4000  # total_, not the non-hierarchical key
    assert usage.memory.limit_bytes is None and usage.memory.peak_bytes == 6000
    assert usage.pids is None  # no pids hierarchy given
    (tmp_path / "cpuacct" / "ctr" / "cpuacct.usage_all").write_text("garbage\n")
    usage, _ = account_v1(dirs, read_small, "/ctr", HZ)
    assert usage.cpu is not None and (usage.cpu.user_ns, usage.cpu.system_ns) == (1, 2)
    (tmp_path / "cpuacct" / "ctr" / "cpuacct.usage_user").unlink()
    usage, errors = account_v1(dirs, read_small, "/ctr", HZ)
    assert usage.cpu is not None and errors == []
    assert (usage.cpu.user_ns, usage.cpu.system_ns) == (3 * 10**9 // HZ, 4 * 10**9 // HZ)


def test_process_exiting_between_its_reads_is_skipped(node: FakeNode) -> None:
    uid, cid = ids()
    other = secrets.token_hex(32)
    node.process(80, container_path(uid, cid), start=1)
    (node.proc / "80" / "stat").unlink()  # cgroup read, then the process was gone
    node.process(81, container_path(uid, other), start=2)
    snap = take_snapshot(node.paths)
    (c,) = snap.containers
    assert c.id == other and c.pids == [81]
    assert snap.errors == []  # gone is not an error


def test_a_node_without_cgroup2_has_no_exit_watcher(
    node: FakeNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pure v1: no cgroup.events to watch; said once in the log, passes go on as before."""
    v1 = tmp_path / "v1"
    for controller in ("cpu,cpuacct", "memory"):
        (v1 / controller).mkdir(parents=True)
        (v1 / controller / "cgroup.procs").write_text("")
    scanner = Scanner(HostPaths(proc_root=str(node.proc), cgroup_root=str(v1)), watch_exits=True)
    try:
        assert scanner.layout.version == "v1" and scanner.exits is None
        assert "no cgroup2 hierarchy" in caplog.text
        assert scanner.take().exited_pods == []
    finally:
        scanner.close()


# Kernel formats of the files this machine's hybrid layout cannot show (v2 memory and io
# controllers) or cannot make on demand (garbage), as Documentation/admin-guide/cgroup-v2
# and accounting/psi.rst give them.
PSI_TEXT = (
    "some avg10=0.12 avg60=0.05 avg300=0.01 total={some}\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n"
)


def test_v2_details_memory_events_io_stat_cpu_max_and_pressure(node: FakeNode) -> None:
    files = v2_files(usage_usec=10, current=4096, inactive=0)
    files["cpu__max"] = "50000 100000\n"
    files["memory__events"] = "low 0\nhigh 3\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n"
    files["io__stat"] = (
        "8:0 rbytes=1048576 wbytes=4194304 rios=7 wios=12 dbytes=0 dios=0\n"
        "254:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    )
    files["cpu__pressure"] = PSI_TEXT.format(some=1500, full=700)
    files["memory__pressure"] = PSI_TEXT.format(some=20, full=10)
    files["io__pressure"] = PSI_TEXT.format(some=2532, full=2500)
    d = node.cgroup("/d", **files)
    usage, errors = account_v2(str(d), read_small, "/d")
    assert errors == []
    assert usage.cpu is not None and (usage.cpu.quota_us, usage.cpu.period_us) == (50000, 100000)
    assert usage.memory is not None and usage.memory.oom_kills == 2
    assert usage.block_io is not None
    assert [
        (b.major, b.minor, b.read_bytes, b.write_bytes, b.reads, b.writes) for b in usage.block_io
    ] == [
        (8, 0, 1048576, 4194304, 7, 12),
        (254, 16, 4096, 0, 1, 0),
    ]
    assert usage.pressure is not None
    assert usage.pressure.model_dump() == {
        "cpu_some_ns": 1_500_000,
        "cpu_full_ns": 700_000,
        "memory_some_ns": 20_000,
        "memory_full_ns": 10_000,
        "io_some_ns": 2_532_000,
        "io_full_ns": 2_500_000,
    }


def test_v2_no_quota_old_cpu_pressure_and_garbage(node: FakeNode) -> None:
    """``max`` quota is none; a kernel before 5.13 has no cpu ``full`` line; garbage in
    a pressure or cpu.max file is an error naming it, the rest still read."""
    files = v2_files(usage_usec=10, current=4096, inactive=0)
    files["cpu__max"] = "max 100000\n"
    files["cpu__pressure"] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n"
    files["memory__pressure"] = "what is this\n"
    d = node.cgroup("/e", **files)
    usage, errors = account_v2(str(d), read_small, "/e")
    assert usage.cpu is not None and (usage.cpu.quota_us, usage.cpu.period_us) == (None, 100000)
    assert usage.pressure is not None
    assert (usage.pressure.cpu_some_ns, usage.pressure.cpu_full_ns) == (42_000, None)
    assert usage.pressure.memory_some_ns is None
    assert [e for e in errors if "memory.pressure" in e and "not pressure stall" in e]
    (d / "cpu.max").write_text("lots 100000\n")
    _, errors = account_v2(str(d), read_small, "/e")
    assert any("cpu.max" in e and "not a quota" in e for e in errors)


def test_v1_block_io_falls_back_to_the_plain_throttle_files(tmp_path: Path) -> None:
    """A kernel without the _recursive files: the plain ones (this cgroup's own I/O)."""
    stat = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n"
    dirs = v1_dirs(
        tmp_path,
        cpuacct__usage="900\n",
        cpuacct__usage_all="cpu user system\n0 100 20\n",
        cpu__stat="nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        memory__usage_in_bytes="5000\n",
        memory__max_usage_in_bytes="6000\n",
        memory__limit_in_bytes="9223372036854771712\n",
        memory__stat="total_inactive_file 1000\n",
        memory__oom_control="oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        blkio__throttle__io_service_bytes=stat + "8:0 Total 12288\nTotal 12288\n",
        blkio__throttle__io_serviced="8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
    )
    usage, errors = account_v1(dirs, read_small, "/ctr", HZ)
    assert errors == []
    assert usage.memory is not None and usage.memory.oom_kills == 3
    assert usage.block_io is not None
    ((entry),) = usage.block_io
    assert (entry.major, entry.minor, entry.read_bytes, entry.write_bytes) == (8, 0, 4096, 8192)
    assert (entry.reads, entry.writes) == (1, 2)
    (tmp_path / "blkio" / "ctr" / "blkio.throttle.io_service_bytes_recursive").write_text(
        "Total 0\n"
    )
    (tmp_path / "blkio" / "ctr" / "blkio.throttle.io_serviced_recursive").write_text("Total 0\n")
    usage, _ = account_v1(dirs, read_small, "/ctr", HZ)
    assert usage.block_io == []  # no I/O at all yet: no device


NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:     840      12    0    0    0     0          0         0      840      12    0 "
    "   0    0     0       0          0\n"
    "  eth0: 5183951   3894    1    2    0     0          0         0   401022    2655    3 "
    "   4    0     0       0          0\n"
    "veth1a2b:  10   1    0    0    0     0          0         0       20       2    0    0 "
    "   0     0       0          0\n"
)


def test_net_dev_interfaces_as_cadvisor_lists_them() -> None:
    from extractor.netdev import parse_net_dev

    (eth0,) = parse_net_dev(NET_DEV.encode())
    assert eth0.model_dump() == {
        "name": "eth0",
        "rx_bytes": 5183951,
        "rx_packets": 3894,
        "rx_errors": 1,
        "rx_dropped": 2,
        "tx_bytes": 401022,
        "tx_packets": 2655,
        "tx_errors": 3,
        "tx_dropped": 4,
    }
    assert parse_net_dev(b"garbage\n\n  eth1: 1 2 3\n") == []
