"""Other pods coming and going on the machine: kubelet-shaped pod cgroups with a process
in them, created and removed all the time, in a process of their own.

Why: a real node always runs other pods, and other suites run on this machine at the same
time; a test that counts what it did not make, or trips over a cgroup that vanishes
under it, fails on a real node. ``Churn`` runs this module as a child process while a
slice of the suite runs (tests/test_clone.py), under a unique ``/ri-churn-<uuid>`` top
directory in every hierarchy (v1 controllers and the cgroup2 one, as the kubelet makes
them), and removes all of it when stopped.

``python -m tests.support.churn PREFIX`` runs until SIGTERM and prints how many pods it
made and removed.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
LIVE_PODS = 6
LIFETIME_SECONDS = (0.3, 3.0)
KUBELET_DELAY_SECONDS = 0.3
"""The kubelet removes an ended pod's cgroups a little after its last process exited."""


def hierarchies() -> list[str]:
    """Where the kubelet creates a pod cgroup on this machine."""
    if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        return [CGROUP_ROOT]
    out = [f"{CGROUP_ROOT}/{c}" for c in V1_CONTROLLERS if os.path.isdir(f"{CGROUP_ROOT}/{c}")]
    if os.path.exists(f"{CGROUP_ROOT}/unified/cgroup.controllers"):
        out.append(f"{CGROUP_ROOT}/unified")
    return out


@dataclass
class _Pod:
    path: str
    container: str
    proc: subprocess.Popen[bytes]
    ends_at: float
    ended_at: float | None = None


@dataclass
class _Churner:
    prefix: str
    mounts: list[str] = field(default_factory=hierarchies)
    pods: list[_Pod] = field(default_factory=list)
    made: int = 0
    removed: int = 0

    def _mkdir(self, path: str) -> None:
        for mount in self.mounts:
            os.makedirs(mount + path, exist_ok=True)

    def start_pod(self) -> None:
        qos = random.choice(("burstable", "besteffort"))
        path = f"{self.prefix}/kubepods/{qos}/pod{uuid.uuid4()}"
        container = f"{path}/{secrets.token_hex(32)}"
        self._mkdir(container)
        procs = [f"{m}{container}/cgroup.procs" for m in self.mounts]
        # the child joins the container cgroup in every hierarchy, spends a little CPU
        # and sleeps: a container as the extractor meets it
        script = (
            'for f in "$@"; do echo $$ > "$f"; done; '
            "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; exec sleep 60"
        )
        proc = subprocess.Popen(["sh", "-c", script, "sh", *procs], stdin=subprocess.DEVNULL)
        lifetime = random.uniform(*LIFETIME_SECONDS)
        self.pods.append(_Pod(path, container, proc, time.monotonic() + lifetime))
        self.made += 1

    def step(self) -> None:
        now = time.monotonic()
        for pod in list(self.pods):
            if pod.ended_at is None and now >= pod.ends_at:
                pod.proc.kill()
                pod.proc.wait()
                pod.ended_at = now
            elif pod.ended_at is not None and now - pod.ended_at >= KUBELET_DELAY_SECONDS:
                self._remove(pod)
        while sum(p.ended_at is None for p in self.pods) < LIVE_PODS:
            self.start_pod()

    def _remove(self, pod: _Pod) -> None:
        for path in (pod.container, pod.path):
            for mount in self.mounts:
                _rmdir(mount + path)
        self.pods.remove(pod)
        self.removed += 1

    def close(self) -> None:
        for pod in list(self.pods):
            if pod.proc.poll() is None:
                pod.proc.kill()
            pod.proc.wait()
            self._remove(pod)
        for mount in self.mounts:
            top = mount + self.prefix
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                _rmdir(dirpath)


def _rmdir(path: str) -> None:
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)  # a killed process takes a moment to leave its cgroup


def main(prefix: str) -> int:
    churner = _Churner(prefix)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        while not stopping:
            churner.step()
            time.sleep(0.05)
    finally:
        churner.close()
    print(f"made {churner.made} removed {churner.removed}", flush=True)
    return 0


class Churn:
    """``with Churn() as churn:`` other pods come and go until the block ends;
    ``churn.made`` then says how many were created."""

    def __init__(self) -> None:
        self.prefix = f"/ri-churn-{uuid.uuid4().hex[:12]}"
        self.made = 0
        self.removed = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Churn:
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.churn", self.prefix],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._proc is not None
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=60)
        with contextlib.suppress(ValueError, IndexError):
            words = out.split()
            self.made, self.removed = int(words[1]), int(words[3])

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
