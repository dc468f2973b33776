"""One node pass (discover + account, and with fingerprints through the worker) on a
synthetic node.

250 containers in 125 pods, 1,000 sleeping processes, in the real v1 cgroup hierarchies
and the cgroup2 one (blkio included), as a hybrid node has them (root only). Each pod is
shaped like a kubelet's: a pause sandbox (one process named ``pause``, in a network
namespace of its own) and an app container with seven processes. The baseline is the
least any discovery can do: read every ``/proc/<pid>/cgroup`` once in a plain Python
loop. Reported: the pass's cost as a ratio of that baseline, cold (``take_snapshot``,
nothing kept) and warm (a long-lived ``Scanner`` with its exit watcher, as ``extractor
serve`` runs, and without the watcher for comparison), the same warm pass with
fingerprints on (the worker process of ``extractor serve``, every fingerprint cached:
what a warm pass pays is the cache check in the pass, and no job may reach the worker),
the CPU a warm pass every 10 s costs as % of one core, what the exit watcher's thread
spends (its first scan, and per pod that starts, exits and is removed), and the resident
memory of a fresh process doing passes.
Also a module: ``python -m bench.bench_pass``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from bench import isolated
from bench.harness import SyntheticNode, container_id, pod_uid
from bench.rounds import rounds
from extractor.contract import Fingerprint
from extractor.fingerprinting import Fingerprints
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner, take_snapshot
from hostfs import ProcStat

PODS = 125
APP_PROCESSES = 7
ROUNDS = 15
EXITS = 100
PATHS = HostPaths(proc_root="/proc", cgroup_root="/sys/fs/cgroup")
NOT_OURS = Fingerprint()

RSS_PROBE = """
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner

def status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))

def rss_kib() -> int:
    return status_kib("VmRSS:")

def hwm_kib() -> int:
    return status_kib("VmHWM:")

before = rss_kib()
scanner = Scanner(HostPaths(), watch_exits=True)
for _ in range(5):
    snap = scanner.take()
print(before, rss_kib(), hwm_kib(), len(snap.containers))
"""


def baseline() -> None:
    """Every /proc/<pid>/cgroup read once, the plain way."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cgroup") as f:
                    f.read()
            except OSError:
                pass


CLONE_NEWNET = 0x40000000


def sleeper(comm: str | None = None, own_network: bool = False) -> int:
    """A sleeping child; ``own_network``: in a network namespace of its own, as a pod's
    sandbox holds one (only its loopback: what the pass reads costs the same)."""
    pid = os.fork()
    if pid == 0:
        try:
            if own_network and ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET):
                os._exit(1)
            if comm is not None:
                with open("/proc/self/comm", "w") as f:
                    f.write(comm)
            signal.pause()
        finally:
            os._exit(0)
    return pid


def wait_for_comm(pid: int, comm: str, timeout: float = 5.0) -> None:
    """Until the child has renamed itself: a pass before that would not see a sandbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == comm:
                return
        time.sleep(0.001)
    raise SystemExit(f"pid {pid} never renamed itself {comm!r}")


def build(tree: SyntheticNode) -> list[int]:
    pids: list[int] = []
    for _ in range(PODS):
        uid = pod_uid()
        pause = sleeper("pause", own_network=True)
        pids.append(pause)
        wait_for_comm(pause, "pause")
        tree.enter(tree.container_path(uid, container_id()), pause)
        app = tree.container_path(uid, container_id())
        for _ in range(APP_PROCESSES):
            pid = sleeper()
            pids.append(pid)
            tree.enter(app, pid)
    return pids


def watcher_cpu_ns() -> int:
    """CPU the exit watcher's thread has used (schedstat: nanoseconds on a CPU)."""
    (thread,) = [t for t in threading.enumerate() if t.name == "exit-watcher"]
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
        return int(f.read().split()[0])


def exit_cost(tree: SyntheticNode, scanner: Scanner) -> tuple[float, float]:
    """(watcher CPU ms per pod that starts, exits and is removed the kubelet's way; CPU ms
    of a warm pass while all those emptied pods' cgroups are still there to re-read)."""
    before = watcher_cpu_ns()
    uids = [pod_uid() for _ in range(EXITS)]
    for uid in uids:
        tree.run_short(tree.container_path(uid, container_id()), loops=100)
    time.sleep(0.5)
    passes = [timed(scanner.take)[1] for _ in range(5)]
    for uid in uids:
        tree.remove(tree.pod_path(uid))
    time.sleep(0.5)
    return (watcher_cpu_ns() - before) / 1e6 / EXITS, statistics.median(passes) * 1e3


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def process_cpu_ns(pid: int) -> int:
    """utime + stime of a process, in nanoseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def measure(tree: SyntheticNode) -> dict[str, float]:
    tree_prefix = tree.prefix
    scanner = Scanner(PATHS, watch_exits=True)
    first_scan_ms = watcher_cpu_ns() / 1e6  # the thread has done nothing else yet
    bare = Scanner(PATHS)
    printed = bare  # the same kept Scanner, with fingerprints: the difference is theirs
    fps = Fingerprints(PATHS.proc_root, pass_seconds=None)

    synthetic: set[str] = set()

    def only_synthetic(
        cid: str, pids: list[int], stats: Sequence[ProcStat] | None = None
    ) -> Fingerprint:
        """The synthetic node's containers only: other containers on this machine come
        and go with other work, and would make jobs of their own."""
        return fps(cid, pids, stats) if cid in synthetic else NOT_OURS

    def fingerprinted() -> object:
        fps.begin_pass()
        return printed.take(fingerprint=only_synthetic)

    try:
        first = scanner.take()
        ours = {p.uid for p in first.pods if p.usage and p.usage.cgroup.startswith(tree_prefix)}
        found = [c for c in first.containers if c.pod_uid in ours]
        if len(found) != 2 * PODS or sum(c.sandbox for c in found) != PODS:
            raise SystemExit(f"pass found {len(found)} of the {2 * PODS} synthetic containers")
        if any(p.host_network is not False for p in first.pods if p.uid in ours):
            raise SystemExit("a synthetic pod's network namespace was not read as its own")
        bare.take()
        synthetic.update(c.id for c in found if not c.sandbox)
        t0 = time.perf_counter()
        fingerprinted()  # every container pending: queued for the worker
        first_fp_ms = (time.perf_counter() - t0) * 1e3
        if not fps.wait(300):
            raise SystemExit("the fingerprint worker did not finish the node")
        settle_s = time.perf_counter() - t0
        cold_jobs = fps.stats.jobs
        worker = int(str(fps.stats.last_ready["ready"]))
        worker_before = process_cpu_ns(worker)
        runs: dict[str, list[tuple[float, float]]] = {
            "base": [],
            "cold": [],
            "warm": [],
            "bare": [],
            "fp": [],
        }
        for _ in range(rounds(ROUNDS)):  # interleaved, so load from elsewhere hits all alike
            runs["base"].append(timed(baseline))
            runs["cold"].append(timed(lambda: take_snapshot(PATHS)))
            runs["warm"].append(timed(scanner.take))
            runs["bare"].append(timed(bare.take))
            runs["fp"].append(timed(fingerprinted))
        watched = len(scanner.watch) if scanner.watch is not None else 0
        assert scanner.exits is not None
        out = {
            "pids": float(len(os.listdir("/proc"))),
            "kept_fds": float(len(scanner.kept) + len(scanner.kept_details)),
            "net_fds": float(len(scanner.network)),
            "pidfds": float(watched),
            "watches": float(scanner.exits.watches),
            "first_scan_ms": first_scan_ms,
            "first_fp_pass_ms": first_fp_ms,
            "fp_settle_s": settle_s,
            "fp_cold_jobs": float(cold_jobs),
            "fp_warm_jobs": float(fps.stats.jobs - cold_jobs),
            "worker_warm_cpu_ms": (process_cpu_ns(worker) - worker_before) / 1e6,
        }
        out["exit_ms"], out["tombstone_pass_ms"] = exit_cost(tree, scanner)
        for name, samples in runs.items():
            out[f"{name}_wall_ms"] = statistics.median(s[0] for s in samples) * 1e3
            out[f"{name}_cpu_ms"] = statistics.median(s[1] for s in samples) * 1e3
        # Every refresh_every-th warm pass re-reads every process; the mean includes them.
        out["warm_mean_cpu_ms"] = statistics.mean(s[1] for s in runs["warm"]) * 1e3
        return out
    finally:
        scanner.close()
        bare.close()
        fps.close()


def rss_probe() -> list[int]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE], cwd=root, capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.split()]


def main() -> int:
    if os.geteuid() != 0:
        print("bench_pass: needs root (real cgroups); skipped")
        return 0
    if not isolated.inside() and isolated.available() is None:
        return isolated.run(["bench.bench_pass"])  # the synthetic node alone (bench/isolated.py)
    tree = SyntheticNode()
    pids: list[int] = []
    try:
        pids = build(tree)
        r = measure(tree)
        before, after, peak, found = rss_probe()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            os.waitpid(pid, 0)
        tree.cleanup()
    print(f"node: {r['pids']:.0f} processes, {2 * PODS} synthetic containers in {PODS} pods")
    print(
        "median of", rounds(ROUNDS), "interleaved rounds; ratio = pass / baseline, CPU time (wall)"
    )
    base_cpu, base_wall = r["base_cpu_ms"], r["base_wall_ms"]
    print(f"baseline, every /proc/<pid>/cgroup read once: {base_cpu:.1f} ms ({base_wall:.1f} ms)")
    labels = (
        ("cold", "cold pass, take_snapshot"),
        ("warm", "warm pass, kept Scanner with exit watcher"),
        ("bare", "warm pass, kept Scanner without exit watcher"),
    )
    for name, label in labels:
        cpu, wall = r[f"{name}_cpu_ms"], r[f"{name}_wall_ms"]
        print(
            f"{label}: {cpu:.1f} ms ({wall:.1f} ms), "
            f"ratio {cpu / base_cpu:.2f} ({wall / base_wall:.2f})"
        )
    fp_cpu, bare_cpu = r["fp_cpu_ms"], r["bare_cpu_ms"]
    print(
        f"first pass with fingerprints on ({r['fp_cold_jobs']:.0f} queued for the worker): "
        f"{r['first_fp_pass_ms']:.1f} ms wall; all fingerprinted {r['fp_settle_s']:.2f} s later"
    )
    print(
        f"warm pass with fingerprints (worker, cache checked in the pass): {fp_cpu:.1f} ms, "
        f"ratio {fp_cpu / base_cpu:.2f}; {fp_cpu - bare_cpu:+.2f} ms against the same pass "
        f"without; jobs sent on warm passes: {r['fp_warm_jobs']:.0f}; worker CPU over "
        f"{rounds(ROUNDS)} warm passes: {r['worker_warm_cpu_ms']:.0f} ms"
    )
    print(
        f"descriptors held by the warm scanner: {r['kept_fds']:.0f} counter files, "
        f"{r['net_fds']:.0f} net/dev files, {r['pidfds']:.0f} pidfds; "
        f"{r['watches']:.0f} inotify watches"
    )
    print(
        f"exit watcher thread CPU: first scan {r['first_scan_ms']:.1f} ms, "
        f"{r['exit_ms']:.2f} ms per pod started, exited and removed ({EXITS} pods)"
    )
    print(
        f"warm pass while {EXITS} emptied pod cgroups await removal (each re-read): "
        f"{r['tombstone_pass_ms']:.1f} ms"
    )
    mean = r["warm_mean_cpu_ms"]
    print(
        f"warm pass mean, periodic full re-reads included: {mean:.1f} ms, "
        f"ratio {mean / base_cpu:.2f}"
    )
    print(f"steady state, a warm pass every 10 s: {mean / 100:.3f} % of one core")
    print(
        f"fresh process: VmRSS {before / 1024:.1f} MiB after imports, "
        f"{after / 1024:.1f} MiB after 5 passes, peak (VmHWM) {peak / 1024:.1f} MiB "
        f"({found} containers seen)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
