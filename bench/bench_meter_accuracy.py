"""What the meter bills on one real workload, next to the kernel's truth and to what the
heartbeat method of OpenMeter's two Kubernetes collectors bills for it.

The workload runs real processes in kubelet-shaped cgroups of this machine's hierarchies
(bench/harness.py): two long-running containers that burn CPU on and off, a
crash-looping container (a new container every few seconds in the same pod, each
running about a second), and ten containers of 0.3 to 3 s, each its own pod, all but one
shorter than the collector's interval. Halfway, the collector is restarted: it is down
for a few seconds (the meter's spool and the collectors' lost ticks both show).

- truth: each pod cgroup's CPU counter read when its last process has exited; each
  container's running time from the bench's own clock (start before the fork, end once
  its cgroup has no process left);
- ours: the extractor's Scanner with its exit watcher, polled every 2 s, and the Meter
  closing 10 s windows (restarted from its spool after the downtime);
- heartbeat: at every tick, each pod in phase Running is billed the tick's length
  (``SCRAPE_INTERVAL=15s`` for the collector, ``MONITOR_RATE_SECONDS=5`` for the
  watcher); a pod whose container is crash-looping is Running throughout; no tick while
  the collector is down. The heartbeat method bills no CPU at all.

Goals: CPU error under 0.1 % per pod, runtime error under 1 s per container lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from bench.harness import SyntheticNode, container_id, pod_uid
from exporter.meter.events import Event
from exporter.meter.pipeline import Meter
from exporter.meter.spool import Spool
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner

POLL = 2.0
WINDOW = 10.0
RUN = 60.0
RESTART_AT = 30.0
DOWN = 8.0
TICKS = {"collector": 15.0, "watcher": 5.0}
SEED = 7


def burn(loops: int) -> str:
    return f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done"


@dataclass
class Pod:
    name: str
    uid: str
    runs: list[tuple[float, float]] = field(default_factory=list)
    created: float = 0.0
    ended: float | None = None
    cpu_ns: int | None = None
    alive: int = 0


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def describe(self) -> str:
        return "memory"

    async def send(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def aclose(self) -> None:
        return None


class Workload:
    """Starts the containers, reaps them, ends and removes their pods."""

    def __init__(self, node: SyntheticNode) -> None:
        self.node = node
        self.pods: dict[str, Pod] = {}
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def pod(self, name: str) -> Pod:
        pod = Pod(name, pod_uid(), created=self.now())
        self.node.make(self.node.pod_path(pod.uid))
        self.pods[name] = pod
        return pod

    def run(self, pod: Pod, script: str) -> subprocess.Popen[bytes]:
        path = self.node.container_path(pod.uid, container_id())
        self.node.make(path)
        procs = [f"{mount}{path}/cgroup.procs" for mount in self.node.mounts.values()]
        join = 'for f in "$@"; do echo $$ > "$f"; done; '
        started = self.now()
        proc = subprocess.Popen(["sh", "-c", join + script, "sh", *procs])
        with self.lock:
            pod.alive += 1

        def reap() -> None:
            proc.wait()
            while _members(f"{self.node.mounts['cpuacct']}{path}"):
                time.sleep(0.002)  # a child may outlive the shell a moment
            ended = self.now()
            with self.lock:
                pod.runs.append((started, ended))
                pod.alive -= 1
            time.sleep(0.3)  # the runtime removes the container's cgroup a moment later
            self.node.remove(path)

        thread = threading.Thread(target=reap, daemon=True)
        thread.start()
        self.threads.append(thread)
        return proc

    def end(self, pod: Pod) -> None:
        """The pod's last process is gone: read the kernel's truth, remove it later."""
        while pod.alive:
            time.sleep(0.01)
        time.sleep(0.05)
        with open(f"{self.node.mounts['cpuacct']}{self.node.pod_path(pod.uid)}/cpuacct.usage") as f:
            pod.cpu_ns = int(f.read())
        pod.ended = self.now()
        time.sleep(1.0)  # the kubelet removes the pod's cgroup seconds later
        self.node.remove(self.node.pod_path(pod.uid))

    def start(self, rng: random.Random) -> None:
        def long(name: str) -> None:
            pod = self.pod(name)
            proc = self.run(pod, f"while :; do {burn(30_000)}; sleep 0.3; done")
            self.stop.wait()
            proc.kill()
            path = f"{self.node.mounts['cpuacct']}{self.node.pod_path(pod.uid)}"
            for sub in os.listdir(path):
                for pid in _members(f"{path}/{sub}"):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self.end(pod)

        def crash() -> None:
            pod = self.pod("crashloop")
            while not self.stop.is_set():
                proc = self.run(pod, f"{burn(60_000)}; sleep 0.8")
                proc.wait()
                self.stop.wait(2.0)  # the kubelet's back-off, shortened
            self.end(pod)

        def short(n: int, delay: float, seconds: float) -> None:
            time.sleep(delay)
            pod = self.pod(f"short-{n}")
            self.run(pod, f"{burn(20_000)}; sleep {seconds:.2f}").wait()
            self.end(pod)

        jobs = [lambda: long("long-1"), lambda: long("long-2"), crash]
        for n in range(10):
            delay, seconds = rng.uniform(3.0, RUN - 8.0), rng.uniform(0.3, 3.0)
            jobs.append(lambda n=n, d=delay, s=seconds: short(n, d, s))  # type: ignore[misc]
        for job in jobs:
            thread = threading.Thread(target=job, daemon=True)
            thread.start()
            self.threads.append(thread)

    def running(self, pod: Pod) -> bool:
        """Phase Running as the API reports it: the crash loop's pod throughout."""
        if pod.name == "crashloop":
            return pod.ended is None
        return pod.alive > 0


def _members(directory: str) -> list[int]:
    try:
        with open(f"{directory}/cgroup.procs") as f:
            return [int(p) for p in f.read().split()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def heartbeat(work: Workload, tick: float, down: tuple[float, float]) -> dict[str, float]:
    """Seconds the heartbeat method bills each pod (run in its own thread)."""
    billed: dict[str, float] = {}
    n = 1
    while not work.stop.is_set() or any(p.ended is None for p in work.pods.values()):
        target = n * tick
        while work.now() < target:
            time.sleep(0.01)
        n += 1
        if down[0] <= target < down[1]:
            continue  # the collector is restarting: no tick
        with work.lock:
            for pod in work.pods.values():
                if work.running(pod):
                    billed[pod.name] = billed.get(pod.name, 0.0) + tick
    return billed


def measure() -> dict[str, object]:
    rng = random.Random(SEED)
    node = SyntheticNode()
    node.make(node.pod_path(pod_uid()).rsplit("/", 1)[0])
    scanner = Scanner(HostPaths(cgroup_root="/sys/fs/cgroup"), watch_exits=True)
    spool_dir = tempfile.mkdtemp(prefix="ri-bench-accuracy-")
    sink = Collect()
    work = Workload(node)
    results: dict[str, dict[str, float]] = {}
    down = (RESTART_AT, RESTART_AT + DOWN)

    def beat(name: str, tick: float) -> None:
        results[name] = heartbeat(work, tick, down)

    loop = asyncio.new_event_loop()
    first = Meter(Spool(spool_dir, 1 << 30), sink, interval_seconds=WINDOW)
    meter: Meter | None = first
    try:
        first.observe(scanner.take(), lambda uid: None)  # the baseline, before any pod
        work.t0 = time.monotonic()
        work.start(rng)
        beats = [threading.Thread(target=beat, args=kv, daemon=True) for kv in TICKS.items()]
        for b in beats:
            b.start()
        while True:
            at = work.now()
            if at >= RUN and not work.stop.is_set():
                work.stop.set()
            if down[0] <= at < down[1]:
                if meter is not None:  # the collector is restarted: the process dies
                    meter.spool.close()
                    meter = None
                time.sleep(0.1)
                continue
            if meter is None:
                meter = Meter(Spool(spool_dir, 1 << 30), sink, interval_seconds=WINDOW)
            meter.observe(scanner.take(), lambda uid: None)
            loop.run_until_complete(meter.deliver_once())
            ended = [p.ended for p in work.pods.values()]
            if work.stop.is_set() and None not in ended:
                last = max(e for e in ended if e is not None)
                if at > last + 2.5 * WINDOW:
                    break
            time.sleep(max(0.0, POLL - (work.now() - at)))
        for b in beats:
            b.join(60)
    finally:
        work.stop.set()
        for thread in work.threads:
            thread.join(30)
        if meter is not None:
            loop.run_until_complete(meter.stop())
        loop.close()
        scanner.close()
        node.cleanup()
    return {"pods": work.pods, "events": sink.events, "heartbeat": results}


def main() -> int:
    if os.geteuid() != 0:
        print("bench_meter_accuracy: needs root (real cgroups); skipped")
        return 0
    r = measure()
    pods: dict[str, Pod] = r["pods"]  # type: ignore[assignment]
    events: list[Event] = r["events"]  # type: ignore[assignment]
    beats: dict[str, dict[str, float]] = r["heartbeat"]  # type: ignore[assignment]
    by_uid: dict[str, tuple[int, float]] = {}
    for e in events:
        cpu, runtime = by_uid.get(e["data"]["pod_uid"], (0, 0.0))
        by_uid[e["data"]["pod_uid"]] = (
            cpu + e["data"]["cpu_ns"],
            runtime + e["data"]["runtime_seconds"],
        )
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(
        f"load average {load}; polls every {POLL:g}s, windows of {WINDOW:g}s, collector "
        f"down {DOWN:g}s at {RESTART_AT:g}s; heartbeat ticks {TICKS}"
    )
    head = (
        f"{'pod':11} {'runs':>4} {'CPU s':>8} {'ours':>8} {'err %':>7} "
        f"{'run s':>7} {'ours':>7} {'err s':>6} {'coll.':>6} {'err s':>6} "
        f"{'watch.':>6} {'err s':>6}"
    )
    print(head)
    cpu_errors: list[float] = []
    run_errors: list[float] = []
    their_errors: dict[str, list[float]] = {k: [] for k in TICKS}
    for pod in sorted(pods.values(), key=lambda p: p.name):
        truth_cpu = (pod.cpu_ns or 0) / 1e9
        truth_run = sum(b - a for a, b in pod.runs)
        cpu_ns, runtime = by_uid.get(pod.uid, (0, 0.0))
        cpu_err = 100 * (cpu_ns / 1e9 - truth_cpu) / truth_cpu if truth_cpu else 0.0
        cpu_errors.append(abs(cpu_err))
        run_errors.append(abs(runtime - truth_run) / max(len(pod.runs), 1))
        theirs = {k: beats.get(k, {}).get(pod.name, 0.0) for k in TICKS}
        for k, v in theirs.items():
            their_errors[k].append(abs(v - truth_run))
        print(
            f"{pod.name:11} {len(pod.runs):>4} {truth_cpu:8.3f} {cpu_ns / 1e9:8.3f} "
            f"{cpu_err:+7.3f} {truth_run:7.2f} {runtime:7.2f} {runtime - truth_run:+6.2f} "
            f"{theirs['collector']:6.0f} {theirs['collector'] - truth_run:+6.1f} "
            f"{theirs['watcher']:6.0f} {theirs['watcher'] - truth_run:+6.1f}"
        )
    total_cpu = sum((p.cpu_ns or 0) for p in pods.values()) / 1e9
    billed_cpu = sum(by_uid.get(p.uid, (0, 0.0))[0] for p in pods.values()) / 1e9
    print(f"total CPU: kernel {total_cpu:.3f} s, ours {billed_cpu:.3f} s; heartbeat: none billed")
    median = statistics.median(run_errors)
    print(
        f"largest errors: ours CPU {max(cpu_errors):.4f} %, runtime "
        f"{max(run_errors):.3f} s per container lifetime (median {median:.3f}); "
        + ", ".join(f"{k} runtime {max(v):.1f} s per pod" for k, v in their_errors.items())
    )
    ok = max(cpu_errors) < 0.1 and max(run_errors) < 1.0
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
