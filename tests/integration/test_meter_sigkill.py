"""Exactly once under SIGKILL: the real extractor and exporter over real containers.

Real CPU-burning containers run in the test's private containerd: a long-running pod, a
crash-looping container re-created under the same pod with a sandbox and without one
(whose pod cgroup empties between runs), a pod that runs one short container after
another, and a dozen pods of 0.3 to 6 s, most of them shorter than one poll and ending
between polls. The real ``runtime-insights extractor serve`` and ``runtime-insights
exporter`` processes meter them into the fake OpenMeter, which fails about a third of
the requests (503, 429 with Retry-After, connections cut before the body is taken, and
after the events were ingested so the answer is lost). Meanwhile the exporter is
SIGKILLed at random moments many times and the extractor once. The "kubelet" of the test
removes an ended pod's cgroup a moment after it emptied (never while the extractor is
down: a pod whose cgroup is gone before any extractor read it is lost by design, README).

After recovery, per pod, the deduplicated sum of ``cpu_ns`` must equal the kernel's pod
counter read at its end within max(1 ms, 0.01 %) (the kernel may still account a few
microseconds after the last process left); no pod may be missing, no event may fail the
schema or hold a negative number, nothing may be parked. The random seed is printed;
``RI_SIGKILL_SEED=<seed>`` replays the same schedule.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.containerd import Containerd, ContainerdPod
from tests.support.openmeter import FakeOpenMeter
from tests.support.paths import REPO_ROOT

pytestmark = [pytest.mark.root, pytest.mark.containerd]

RUN_SECONDS = 75.0
EXPORTER_KILLS = (1.5, 5.0)
"""Seconds between two SIGKILLs of the exporter, drawn uniformly."""
KUBELET_DELAY = 1.5
SETTLE_SECONDS = 90.0
SHORT_PODS = 12


def burn(loops: int) -> str:
    return f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done"


@dataclass
class Truth:
    """What the kernel says each pod used, read when its last process was gone."""

    final: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, pod: ContainerdPod, ns: int) -> None:
        with self.lock:
            self.final[pod.pod_uid] = ns
            self.names[pod.pod_uid] = pod.pod_name


class Processes:
    """The extractor and the exporter, started, killed and started again."""

    def __init__(self, base: str, logs: Path, containerd: Containerd, url: str) -> None:
        self.socket = os.path.join(base, "run", "extractor.sock")
        os.makedirs(os.path.dirname(self.socket))
        self.spool = os.path.join(base, "spool")
        self.containerd = containerd
        self.url = url
        self.logs = logs
        self.extractor: subprocess.Popen[bytes] | None = None
        self.exporter: subprocess.Popen[bytes] | None = None
        self.extractor_up = threading.Event()
        self.extractor_since = 0.0
        self.exporter_runs = 0

    def _spawn(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.logs / log, "ab")  # noqa: SIM115 - the child holds it
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "runtime_insights", *argv],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            out.close()

    def start_extractor(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        argv = ["extractor", "serve", "--no-fingerprints", "--socket", self.socket]
        argv += ["--containerd-state", self.containerd.task_root]
        self.extractor = self._spawn(argv, dict(os.environ), "extractor.log")
        wait_for(lambda: os.path.exists(self.socket), "the extractor's socket")
        self.extractor_since = time.monotonic()
        self.extractor_up.set()

    def kill_extractor(self) -> None:
        assert self.extractor is not None
        self.extractor_up.clear()
        self.extractor.send_signal(signal.SIGKILL)
        self.extractor.wait()

    def start_exporter(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")},
            "RUNTIME_INSIGHTS_EXTRACTOR_SOCKET": self.socket,
            "RUNTIME_INSIGHTS_KUBE_ENABLED": "false",
            "RUNTIME_INSIGHTS_HOST": "127.0.0.1",
            "RUNTIME_INSIGHTS_PORT": "0",
            "RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS": "1",
            "RUNTIME_INSIGHTS_OPENMETER_URL": self.url,
            "RUNTIME_INSIGHTS_OPENMETER_TIMEOUT_SECONDS": "5",
            "RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS": "3",
            "RUNTIME_INSIGHTS_METER_MAX_ATTEMPTS": "3",
            "RUNTIME_INSIGHTS_METER_SPOOL_DIR": self.spool,
        }
        self.exporter = self._spawn(["exporter"], env, "exporter.log")
        self.exporter_runs += 1

    def kill_exporter(self) -> None:
        assert self.exporter is not None
        self.exporter.send_signal(signal.SIGKILL)
        self.exporter.wait()

    def kubelet_may_remove(self) -> bool:
        """A pod's cgroup is removed only while an extractor has been watching a moment."""
        return self.extractor_up.is_set() and time.monotonic() - self.extractor_since > 1.0

    def stop(self) -> None:
        for p in (self.exporter, self.extractor):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def wait_for(found: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Kubelet:
    """Runs the workload on the test's containerd, ends pods and removes them."""

    def __init__(self, ctd: Containerd, procs: Processes, truth: Truth, rng: random.Random) -> None:
        self.ctd = ctd
        self.procs = procs
        self.truth = truth
        self.rng = rng
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def run(self, name: str, body: Callable[[random.Random], None]) -> None:
        rng = random.Random(self.rng.random())

        def guarded() -> None:
            try:
                body(rng)
            except BaseException as e:  # reported by the test
                self.errors.append(e)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(120)
        if self.errors:
            raise self.errors[0]

    def finish(self, pod: ContainerdPod) -> None:
        """End the pod, read the kernel's truth, and remove it a moment later."""
        self.ctd.end_pod(pod)
        self.truth.record(pod, self.ctd.pod_cpu_ns(pod))
        time.sleep(KUBELET_DELAY)
        while not self.procs.kubelet_may_remove():
            time.sleep(0.1)
        self.ctd.remove_pod(pod)

    def wait_exit(self, pod: ContainerdPod, cid: str, timeout: float = 30.0) -> None:
        pid = pod.pids[cid]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        return
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.01)
        raise AssertionError(f"container {cid[:12]} of {pod.pod_name} did not exit")

    # -- the workload

    def long_running(self, rng: random.Random) -> None:
        loop = f"while :; do {burn(20_000)}; sleep 0.2; done"
        pod = self.ctd.run_pod("bill", "long", {"burner": ["/bin/sh", "-c", loop]})
        self.stop.wait()
        self.finish(pod)

    def crash_loop(self, sandbox: bool) -> Callable[[random.Random], None]:
        def body(rng: random.Random) -> None:
            name = "crashloop" if sandbox else "crashloop-bare"
            pod = self.ctd.run_pod("bill", name, {}, sandbox=sandbox)
            while not self.stop.is_set():
                cid = self.ctd.add_container(pod, "crash", ["/bin/sh", "-c", burn(150_000)])
                self.wait_exit(pod, cid)
                time.sleep(rng.uniform(0.0, 0.3))
                self.ctd.remove_container(pod, cid)
                time.sleep(rng.uniform(0.2, 1.5))  # the kubelet's back-off, shortened
            self.finish(pod)

        return body

    def many_short_containers(self, rng: random.Random) -> None:
        pod = self.ctd.run_pod("bill", "churn", {})
        while not self.stop.is_set():
            cid = self.ctd.add_container(pod, "step", ["/bin/sh", "-c", burn(30_000)])
            self.wait_exit(pod, cid)
            self.ctd.remove_container(pod, cid)
        self.finish(pod)

    def short_pods(self, rng: random.Random) -> None:
        """Twelve pods of 0.3 to 6 s, each ended and removed on its own thread."""
        enders = []
        for n in range(SHORT_PODS):
            seconds = rng.uniform(0.3, 6.0)
            script = f"{burn(50_000)}; sleep {seconds:.2f}; {burn(50_000)}"
            pod = self.ctd.run_pod("bill", f"short-{n}", {"job": ["/bin/sh", "-c", script]})

            def end(pod: ContainerdPod = pod) -> None:
                self.wait_exit(pod, pod.containers["job"])
                self.finish(pod)

            enders.append(threading.Thread(target=end, daemon=True))
            enders[-1].start()
            time.sleep(rng.uniform(0.5, 4.0))
        for ender in enders:
            ender.join(60)


def billed(events: dict[tuple[str, str], dict[str, object]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for event in events.values():
        data = event["data"]
        assert isinstance(data, dict)
        uid = str(data["pod_uid"])
        out[uid] = out.get(uid, 0) + int(data["cpu_ns"])
    return out


def within(billed_ns: int, truth_ns: int) -> bool:
    return abs(billed_ns - truth_ns) <= max(1_000_000, truth_ns // 10_000)


def negatives(value: object, where: str = "data") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from negatives(v, f"{where}.{k}")
    elif value is None:
        yield f"{where} is null"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        yield f"{where} = {value}"


@pytest.fixture
def base() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ri-kill-", dir="/tmp")  # short: it holds a socket
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_every_pod_is_billed_its_kernel_counter_exactly_once_across_sigkills(
    containerd: Containerd, base: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RI_SIGKILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nRI_SIGKILL_SEED={seed} (logs of both processes in {tmp_path})")
    rng = random.Random(seed)
    truth = Truth()
    with FakeOpenMeter.threaded() as om:
        om.chaos(0.33, random.Random(rng.random()))
        procs = Processes(base, tmp_path, containerd, om.url)
        kubelet = Kubelet(containerd, procs, truth, rng)
        try:
            procs.start_extractor()
            procs.start_exporter()
            # the meter's baseline (its first poll) comes before any pod of the workload
            wait_for(lambda: os.path.exists(os.path.join(procs.spool, "state.json")), "a poll")
            kubelet.run("long", kubelet.long_running)
            kubelet.run("crashloop", kubelet.crash_loop(sandbox=True))
            kubelet.run("crashloop-bare", kubelet.crash_loop(sandbox=False))
            kubelet.run("churn", kubelet.many_short_containers)
            kubelet.run("short", kubelet.short_pods)
            began = time.monotonic()
            extractor_kill_at = began + rng.uniform(0.3, 0.6) * RUN_SECONDS
            kills = 0
            while time.monotonic() - began < RUN_SECONDS:
                time.sleep(rng.uniform(*EXPORTER_KILLS))
                procs.kill_exporter()
                kills += 1
                procs.start_exporter()
                if extractor_kill_at and time.monotonic() > extractor_kill_at:
                    procs.kill_extractor()
                    time.sleep(rng.uniform(0.5, 2.0))
                    procs.start_extractor()
                    extractor_kill_at = 0.0
            kubelet.stop.set()
            kubelet.join()
            ours = dict(truth.final)

            def settled() -> bool:
                got = billed(om.snapshot())
                return all(within(got.get(uid, 0), ns) for uid, ns in ours.items())

            with contextlib.suppress(AssertionError):
                wait_for(settled, "the bill to settle", timeout=SETTLE_SECONDS)
        finally:
            kubelet.stop.set()
            procs.stop()
        events = om.snapshot()
        got = billed(events)
        report = [
            f"{truth.names[uid]:16} kernel {ns:>14} billed {got.get(uid, 0):>14} "
            f"diff {got.get(uid, 0) - ns:>+12}"
            for uid, ns in sorted(ours.items(), key=lambda kv: truth.names[kv[0]])
        ]
        print(
            f"seed {seed}: exporter killed {kills} times, extractor once; "
            f"{len(om.requests)} requests, {om.duplicates} duplicates dropped\n" + "\n".join(report)
        )
        assert len(ours) == 4 + SHORT_PODS and kills >= 10
        wrong = [
            line
            for uid, line in zip(sorted(ours, key=truth.names.__getitem__), report, strict=True)
            if not within(got.get(uid, 0), ours[uid])
        ]
        assert not wrong, f"seed {seed}: pods billed wrong (logs in {tmp_path}):\n" + "\n".join(
            wrong
        )
        assert om.rejected == 0, f"seed {seed}: events failed the schema"
        bad = [n for e in events.values() for n in negatives(e["data"])]
        assert not bad, f"seed {seed}: {bad[:5]}"
        poison = os.path.join(procs.spool, "poison")
        assert not os.listdir(poison), f"seed {seed}: parked {os.listdir(poison)}"
        assert om.duplicates > 0  # the lost answers and the kills did cause resends
