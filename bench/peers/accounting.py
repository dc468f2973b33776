"""A cgroup per measured tool: what its processes (and their children, and the children
that already exited) cost in CPU, and how much memory they hold.

Why a cgroup and not /proc/<pid>/stat alone: netdata runs a shell script per new
container, PCP's pmcd forks its PMDA; ``cpuacct.usage`` counts all of them to the
nanosecond, exited or not. /proc is read only to split a tool's cost by process and
thread, and for the resident memory of the processes alive at the time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from bench.harness import CGROUP_ROOT, SyntheticNode


class ToolCgroup:
    """One tool's cgroup under the synthetic node's prefix, in every hierarchy (host
    paths: the bench reads it from outside the node's namespaces)."""

    def __init__(self, node: SyntheticNode, name: str) -> None:
        self.name = name
        self.path = f"{node.prefix}/tools/{name}"
        node.make(self.path)

    def alive(self) -> bool:
        return bool(self.pids())

    def stop(self) -> None:
        """SIGTERM to everything here, SIGKILL to what is left after 10 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.pids():
                return

    def cpu_ns(self) -> int:
        """CPU time of everything that ever ran here (``cpuacct.usage``)."""
        return int(Path(f"{CGROUP_ROOT}/cpuacct{self.path}/cpuacct.usage").read_text())

    def pids(self) -> list[int]:
        text = Path(f"{CGROUP_ROOT}/cpuacct{self.path}/cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory (VmRSS) of the processes alive here now, per process name."""
        out: dict[str, int] = {}
        for pid in self.pids():
            label = process_label(pid)
            out[label] = out.get(label, 0) + rss_bytes(pid)
        return out

    def threads_ns(self) -> dict[str, int]:
        """CPU time per ``process/thread`` name of the threads alive here now, from
        schedstat (nanoseconds on a CPU); threads of one name are added together."""
        out: dict[str, int] = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                comm = process_label(pid)
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with contextlib.suppress(OSError):
                        task = f"/proc/{pid}/task/{tid}"
                        thread = Path(f"{task}/comm").read_text().strip()
                        ns = int(Path(f"{task}/schedstat").read_text().split()[0])
                        key = f"{comm}/{thread}"
                        out[key] = out.get(key, 0) + ns
        return out


def process_label(pid: int) -> str:
    """A process's name; for a Python one, the module it runs (``-m``) and, for this
    project's command, its subcommand: the extractor, its worker and the exporter are
    all ``python`` to the kernel."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    if "-m" in argv[:-1]:
        i = argv.index("-m")
        module = argv[i + 1]
        if module == "runtime_insights" and len(argv) > i + 2:
            return f"{module} {argv[i + 2]}"
        return module
    return comm


def rss_bytes(pid: int) -> int:
    """VmRSS of one process; 0 for one that has gone (or a kernel thread)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
