"""The node every tool reads: N containers in N/2 kubelet-shaped pods, real processes in
every container cgroup, and one container whose CPU the bench controls.

Each pod has a pause sandbox (one process named ``pause``) and an app container with
``app_processes`` sleepers, as bench/bench_pass.py builds them; the processes are
busybox's ``sleep`` (static, ~0.13 MiB each: 4,000 of them fit beside other work), the
sandbox's started through a link named ``pause`` so that its name is what the kubelet's
is. One app container holds the *burner* instead: a process that spends 20 % of a core
while it runs and is kept stopped (SIGSTOP) otherwise, so that its cgroup's counter
stands still except while the bench lets it burn. A tool's reading taken while the
burner is stopped and the next one after it stopped again must differ by exactly what
the kernel counted in between: that is the accuracy check, whatever moment of its own
each tool samples at.

The node is a machine of its own to every tool: the spawner, a small Python program, is
the init (PID 1) of a PID namespace with its own /proc, in a cgroup namespace rooted at
the node's prefix and a mount namespace in which each cgroup hierarchy's root is the
node's directory in it (a bind mount), and it spawns what the bench asks it to on its
stdin: the node's processes and every tool. So a tool walking /proc meets the node's
processes, and one walking the cgroup trees or watching them meets the node's cgroups,
not what other work on this shared machine keeps starting and ending; the cgroup paths
in /proc/<pid>/cgroup read ``/kubepods/burstable/pod<uid>/<id>``, as on a node whose
kubelet owns the root. When the bench ends, however it ends, the spawner's stdin closes,
the spawner exits, and the kernel kills every process left in the namespace; ``close``
removes the cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import CGROUP_ROOT, SyntheticNode, container_id, pod_uid
from bench.peers.accounting import ToolCgroup, process_label

BURNER = """
import time
while True:
    end = time.process_time() + 0.01
    while time.process_time() < end:
        pass
    time.sleep(0.04)
"""
"""10 ms of CPU, then 40 ms asleep: a fifth of a core, measured in its own CPU time so
that a busy machine slows it down without changing the share."""

SPAWNER = """
import json, os, select, subprocess

def enter(files):
    for name in files:
        with open(name, "w") as f:
            f.write(str(os.getpid()))

def spawn(req):
    out = open(req["log"], "ab") if req["log"] else subprocess.DEVNULL
    subprocess.Popen(
        req["argv"], executable=req["executable"], preexec_fn=lambda: enter(req["cgroups"]),
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        env=req["env"], cwd=req["cwd"])
    if req["log"]:
        out.close()

pending = b""
while True:
    ready, _, _ = select.select([0], [], [], 1.0)
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    if not ready:
        continue
    chunk = os.read(0, 1 << 16)
    if not chunk:
        raise SystemExit(0)
    *lines, pending = (pending + chunk).split(b"\\n")
    for line in lines:
        req = json.loads(line)
        if "argv" in req:
            spawn(req)
        else:
            os.write(1, b"ok\\n")
"""
"""The namespace's init (it has no threads, so a ``preexec_fn`` is safe): spawn each
requested command inside its cgroups from its first instruction on, reap every child
that ends (orphans come to PID 1), answer ``{}`` with ``ok`` once every request before
it is done, exit when its stdin closes."""

ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"'
"""sh: write its own PID to every cgroup.procs file before ``--``, exec the rest."""

NODE_VIEW = """
prefix=$1; shift
for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts); do
    if [ -d "$m$prefix" ]; then
        mount --bind "$m$prefix" "$m" || exit 1
    else
        umount -l "$m" || exit 1
    fi
done
exec "$@"
"""
"""sh, in the node's fresh mount namespace: each hierarchy's root becomes the node's
directory in it, and a hierarchy the node has no directory in (cpuset, devices,
freezer, the named systemd one) is unmounted, then exec the rest. netdata walks those
too: left mounted, they showed it the pod cgroups other suites on this machine keep
creating, each costing it two scripts."""


class PeerNode:
    def __init__(self, containers: int, app_processes: int, scratch: Path) -> None:
        if containers < 2 or containers % 2:
            raise ValueError("containers: an even number, at least 2 (pods of two)")
        self.containers = containers
        self.app_processes = app_processes
        self.tree = SyntheticNode()
        self._scratch = scratch
        self.processes = 0
        self.ids: set[str] = set()
        """Every synthetic container's id (sandboxes and apps)."""
        self.app_ids: set[str] = set()
        self.burner_id = ""
        self.burner_path = ""
        self._burner_pid = 0
        self._sandboxes: list[str] = []
        self._spawner: subprocess.Popen[str] | None = None

    def _procs_files(self, path: str, inside: bool) -> list[str]:
        """cgroup.procs of ``path`` in every hierarchy, as the host sees them or as the
        node's namespaces do (relative to the prefix)."""
        prefix = self.tree.prefix
        rel = path[len(prefix) :] if inside else path
        assert not inside or path.startswith(prefix)
        return [f"{mount}{rel}/cgroup.procs" for mount in self.tree.mounts.values()]

    def build(self) -> None:
        busybox = shutil.which("busybox")
        if busybox is None:
            raise SystemExit("bench_peers: busybox is missing (make system-deps installs it)")
        pause = self._scratch / "pause"
        pause.symlink_to(busybox)
        prefix = self.tree.prefix
        self.tree.make(prefix)
        init = ["sh", "-c", NODE_VIEW, "sh", prefix, sys.executable, "-I", "-c", SPAWNER]
        namespaces = ["unshare", "--pid", "--mount-proc", "--cgroup", "--kill-child", *init]
        self._spawner = subprocess.Popen(
            ["sh", "-c", ENTER, "sh", *self._procs_files(prefix, False), "--", *namespaces],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(self.containers // 2):
            uid = pod_uid()
            sandbox, app = container_id(), container_id()
            self.ids.update((sandbox, app))
            self.app_ids.add(app)
            sandbox_path = self.tree.container_path(uid, sandbox)
            self._sandboxes.append(sandbox_path)
            self.spawn(sandbox_path, ["sleep", "2147483647"], executable=str(pause))
            app_path = self.tree.container_path(uid, app)
            if i == 0:
                self.burner_id, self.burner_path = app, app_path
                self.spawn(app_path, [sys.executable, "-I", "-c", BURNER])
            else:
                for _ in range(self.app_processes):
                    self.spawn(app_path, ["sleep", "2147483647"], executable=busybox)
        self.sync()
        self._burner_pid = self._wait_for(self.burner_path, None)
        os.kill(self._burner_pid, signal.SIGSTOP)
        self._wait_stopped()
        for path in self._sandboxes:
            self._wait_for(path, "pause")

    def spawn(
        self,
        path: str,
        argv: list[str],
        *,
        executable: str | None = None,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start ``argv`` in the node's namespace, inside cgroup ``path`` (made here)."""
        assert self._spawner is not None and self._spawner.stdin is not None
        self.tree.make(path)
        req = {
            "argv": argv,
            "executable": executable,
            "cgroups": self._procs_files(path, True),
            "log": str(log) if log else None,
            "env": env,
            "cwd": str(cwd) if cwd else None,
        }
        self._spawner.stdin.write(json.dumps(req) + "\n")
        self.processes += 1

    def sync(self) -> None:
        """Until the spawner has started everything asked of it so far."""
        assert self._spawner is not None
        assert self._spawner.stdin is not None and self._spawner.stdout is not None
        self._spawner.stdin.write("{}\n")
        self._spawner.stdin.flush()
        if self._spawner.stdout.readline().strip() != "ok":
            raise SystemExit("bench_peers: the node's spawner died")

    def _wait_for(self, path: str, label: str | None) -> int:
        """The host PID of the process in ``path`` once it is named ``label`` (the first
        one there for None): it enters its cgroup before it execs, and a pass that met it
        then would see the spawner's name."""
        procs = Path(f"{CGROUP_ROOT}/cpuacct{path}/cgroup.procs")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid in procs.read_text().split():
                if label is None or process_label(int(pid)) == label:
                    return int(pid)
            time.sleep(0.01)
        raise SystemExit(f"bench_peers: no {label} process in {path}")

    def tool_cgroup(self, name: str) -> ToolCgroup:
        return ToolCgroup(self.tree, name)

    def burner_ns(self) -> int:
        """The kernel's CPU counter of the burner's container (``cpuacct.usage``)."""
        return int(Path(f"{CGROUP_ROOT}/cpuacct{self.burner_path}/cpuacct.usage").read_text())

    def burn(self, seconds: float) -> tuple[float, float, int]:
        """Let the burner run for ``seconds``: (wall time it was let go, wall time it was
        stopped again, CPU ns the kernel counted for its container in between)."""
        before = self.burner_ns()
        started = time.time()
        os.kill(self._burner_pid, signal.SIGCONT)
        time.sleep(seconds)
        os.kill(self._burner_pid, signal.SIGSTOP)
        self._wait_stopped()
        return started, time.time(), self.burner_ns() - before

    def _wait_stopped(self) -> None:
        """Until the burner is off the CPU: a counter read before that could still move."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stat = Path(f"/proc/{self._burner_pid}/stat").read_text()
            if stat.rpartition(")")[2].split()[0] == "T":
                return
            time.sleep(0.001)
        raise SystemExit("bench_peers: the burner did not stop")

    def close(self) -> None:
        """End the namespace (every process in it dies with its init), kill what the
        tools' cgroups still hold, remove every cgroup."""
        if self._spawner is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self._spawner.stdin is not None
                self._spawner.stdin.close()
            try:
                self._spawner.wait(30)
            except subprocess.TimeoutExpired:
                self._spawner.kill()
                self._spawner.wait()
        self.tree.cleanup()
        with contextlib.suppress(FileNotFoundError):
            (self._scratch / "pause").unlink()
