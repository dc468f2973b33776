"""Real kernel cgroup trees shaped like the kubelet's, for integration tests and benches.

Everything lives under a unique top-level ``/ri-test-<uuid>`` so that parallel runs never
meet; the identity parser matches ``kubepods`` anywhere in a path, so the containers
below it look exactly like a node's. ``KubeTree.cleanup`` kills what it started and
removes the directories bottom-up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from extractor.contract import Container, Pod, Snapshot

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")
UNIFIED = f"{CGROUP_ROOT}/unified"

# A child that waits for orders on stdin so the test can move it into a cgroup first:
# "burn S" spends S seconds of CPU and answers with the CPU time it used doing so
# (CLOCK_PROCESS_CPUTIME_ID, the scheduler's own runtime, the source cpuacct charges
# from); "alloc N" touches N MiB; "comm NAME" renames the thread; "directio PATH N" writes
# N MiB to PATH bypassing the page cache (O_DIRECT, then fsync) and reads 1 MiB back the
# same way, so the block layer sees it in this process's cgroup; EOF ends it.
WORKER = r"""
import mmap, os, sys, time
held = []
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "burn":
        start = time.process_time_ns()
        while time.process_time_ns() - start < float(arg) * 1e9:
            pass
        print(time.process_time_ns() - start, flush=True)
    elif cmd == "alloc":
        held.append(bytearray(int(arg) << 20))
        for i in range(0, len(held[-1]), 4096):
            held[-1][i] = 1
        print("ok", flush=True)
    elif cmd == "comm":
        with open("/proc/self/comm", "w") as f:
            f.write(arg)
        print("ok", flush=True)
    elif cmd == "directio":
        path, mib = arg.rsplit(" ", 1)
        block = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT wants
        block.write(b"x" * (1 << 20))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
        for i in range(int(mib)):
            os.pwrite(fd, block, i << 20)
        os.fsync(fd)
        os.close(fd)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        os.preadv(fd, [block], 0)
        os.close(fd)
        print("ok", flush=True)
"""


def container_in(snapshot: Snapshot, cid: str) -> Container:
    """The one container of ``snapshot`` with this ID."""
    (found,) = [c for c in snapshot.containers if c.id == cid]
    return found


def pod_in(snapshot: Snapshot, uid: str) -> Pod:
    """The one live pod of ``snapshot`` with this UID."""
    (found,) = [p for p in snapshot.pods if p.uid == uid]
    return found


def container_id() -> str:
    return secrets.token_hex(32)


def pod_uid() -> str:
    return str(uuid.uuid4())


def v1_mounts() -> dict[str, str]:
    return {c: f"{CGROUP_ROOT}/{c}" for c in V1_CONTROLLERS}


def v2_mounts() -> dict[str, str]:
    return {"": UNIFIED}


def hybrid_mounts() -> dict[str, str]:
    """The v1 controllers and systemd's cgroup2 hierarchy, as a hybrid node has them: the
    kubelet creates a pod's cgroup in both, and its processes are in both."""
    return {**v1_mounts(), **v2_mounts()}


@dataclass
class Worker:
    proc: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def burn(self, seconds: float) -> int:
        """CPU ns the worker spent burning, by its own clock; returns once the worker is
        blocked reading its next order again, so its counters stand still (on a busy
        machine the few microseconds between its answer and that read can come late)."""
        used = int(self.ask(f"burn {seconds}"))
        self.wait_idle()
        return used

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until the worker sleeps in its read (state S) with its CPU time unchanged."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            state, cpu = fields[0], int(fields[11]) + int(fields[12])  # utime + stime
            with open(f"/proc/{self.pid}/schedstat") as f:
                ran = int(f.read().split()[0])
            if state == "S" and (cpu, ran) == last:
                return
            last = (cpu, ran)
            time.sleep(0.02)
        raise AssertionError(f"worker {self.pid} never went idle")

    def finish(self) -> None:
        """End it the normal way (EOF on its stdin) and reap it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def start_worker(prefix: tuple[str, ...] = ()) -> Worker:
    """A worker; ``prefix`` runs it through a command that execs it (``unshare --net``),
    so its PID is the worker's."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-c", WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Worker(proc)


@dataclass
class KubeTree:
    """Pods and containers in the given hierarchies (key → mount dir), kubelet-named."""

    mounts: dict[str, str]
    driver: str = "cgroupfs"
    prefix: str = field(default_factory=lambda: f"/ri-test-{uuid.uuid4().hex[:12]}")
    created: list[str] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def pod_path(self, uid: str, qos: str = "burstable") -> str:
        if self.driver == "systemd":
            escaped = uid.replace("-", "_")
            if qos == "guaranteed":
                return f"{self.prefix}/kubepods.slice/kubepods-pod{escaped}.slice"
            return (
                f"{self.prefix}/kubepods.slice/kubepods-{qos}.slice/"
                f"kubepods-{qos}-pod{escaped}.slice"
            )
        if qos == "guaranteed":
            return f"{self.prefix}/kubepods/pod{uid}"
        return f"{self.prefix}/kubepods/{qos}/pod{uid}"

    def container_path(self, uid: str, cid: str, qos: str = "burstable") -> str:
        leaf = f"cri-containerd-{cid}.scope" if self.driver == "systemd" else cid
        return f"{self.pod_path(uid, qos)}/{leaf}"

    def directory(self, key: str, path: str) -> str:
        return f"{self.mounts[key]}{path}"

    def make(self, path: str) -> None:
        """mkdir -p ``path`` in every hierarchy, remembering what to remove."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if sub in self.created:
                continue
            for mount in self.mounts.values():
                os.makedirs(f"{mount}{sub}", exist_ok=True)
            self.created.append(sub)

    def enter(self, path: str, pid: int) -> None:
        """Move ``pid`` into ``path`` in every hierarchy."""
        self.make(path)
        for mount in self.mounts.values():
            with open(f"{mount}{path}/cgroup.procs", "w") as f:
                f.write(str(pid))

    def spawn(self, path: str, prefix: tuple[str, ...] = ()) -> Worker:
        worker = start_worker(prefix)
        self.workers.append(worker)
        self.enter(path, worker.pid)
        return worker

    def run_short(self, path: str, loops: int = 3000) -> None:
        """A short process born in ``path`` (every hierarchy): it joins, spends a little
        CPU and exits; reaped when this returns. Cheaper than a Worker for bursts."""
        self.make(path)
        procs = [f"{mount}{path}/cgroup.procs" for mount in self.mounts.values()]
        script = (
            'for f in "$@"; do echo $$ > "$f"; done; '
            f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done"
        )
        subprocess.run(["sh", "-c", script, "sh", *procs], check=True)

    def pod_cpu_ns(self, uid: str, qos: str = "burstable") -> int:
        """The pod cgroup's CPU counter from the hierarchy a pass reads it from: v1
        ``cpuacct.usage`` when the tree has it (v1, hybrid), else v2 ``usage_usec``."""
        path = self.pod_path(uid, qos)
        if "cpuacct" in self.mounts:
            return read_int(f"{self.directory('cpuacct', path)}/cpuacct.usage")
        return read_keyed(f"{self.directory('', path)}/cpu.stat")["usage_usec"] * 1000

    def final_cpu_ns(self, uid: str, qos: str = "burstable") -> int:
        """``pod_cpu_ns`` of a pod whose processes have all exited, once it stands still:
        an exiting task's last slice is charged to its cgroup in its final switch, which
        may come after its parent has reaped it (1 s at most)."""
        last = self.pod_cpu_ns(uid, qos)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.005)
            now = self.pod_cpu_ns(uid, qos)
            if now == last:
                break
            last = now
        return last

    def remove(self, path: str) -> None:
        """rmdir ``path`` and what is below it (its processes must be gone)."""
        below = [p for p in self.created if p == path or p.startswith(path + "/")]
        for sub in sorted(below, key=len, reverse=True):
            for mount in self.mounts.values():
                _rmdir(f"{mount}{sub}")
            self.created.remove(sub)

    def cleanup(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        self.remove(self.prefix)


def _rmdir(path: str) -> None:
    if not os.path.isdir(path):
        return
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except OSError:
            _kill_members(path)


def _kill_members(path: str) -> None:
    """A dying process may linger in cgroup.procs for a moment: make sure it dies."""
    try:
        with open(f"{path}/cgroup.procs") as f:
            pids: Iterable[str] = f.read().split()
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.01)


def inotify_watches() -> int:
    """Watches this process holds in the kernel, over all its inotify instances."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as f:
                    total += sum(1 for line in f if line.startswith("inotify wd:"))
    return total


def read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[0])


def read_keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(" ")
            out[key] = int(value)
    return out
