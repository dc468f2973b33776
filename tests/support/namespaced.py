"""Containers made of real processes: new mount and PID namespaces over a prepared root.

``start`` runs ``sh -c <command>`` as PID 1 of its own namespaces, chrooted to the root,
with the host's /usr bound read-only (so the distribution's runtimes run inside), a
fresh /proc, and any setup lines run in the new mount namespace before the chroot
(more mounts, a FUSE server). Optionally the processes are moved into a kubelet-shaped
container cgroup so that a pass finds them as a container.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.kernel import KubeTree, container_id, pod_uid


@dataclass
class Container:
    unshare: subprocess.Popen[str]
    init_pid: int
    pid: int
    """The workload: PID 1's child that is not a helper started by the setup."""
    id: str


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


EXEC_WAIT_SECONDS = 5.0
"""How long a child that is still PID 1's fork (same command line) is waited for to exec
its program; after that it is taken as it is (a workload run by the shell itself)."""


def _workload(init: int, helper: bytes) -> int:
    """PID 1's one child that is not a helper, once it has exec'd its program: ``ready``
    is printed before the shell forks the workload, and on a busy machine a fork can
    stay a copy of the shell for a while (it would be fingerprinted as the shell)."""
    start = time.monotonic()
    shell = _cmdline(init)
    while True:
        found = [c for c in children(init) if helper not in _cmdline(c)]
        waited = time.monotonic() - start
        if len(found) == 1 and (_cmdline(found[0]) != shell or waited > EXEC_WAIT_SECONDS):
            return found[0]
        if waited > 30:
            (pid,) = found
            return pid
        time.sleep(0.01)


def start(
    root: Path,
    command: str,
    setup: Sequence[str] = (),
    tree: KubeTree | None = None,
    helper: bytes = b"fuse_stall",
    ready: str = "ready",
) -> Container:
    """Ready when the first line on stdout contains ``ready``: printed by the workload
    itself, that line says it runs (a shell's ``echo`` before it would not: the shell
    may not even have forked the workload yet); ``helper``: what names a setup process
    running beside the workload (not taken for the workload)."""
    lines = [
        'mount --bind -o ro /usr "$R/usr"',
        'mount -t proc proc "$R/proc"',
        *setup,
        f'exec chroot "$R" /bin/sh -c {shlex.quote(command + "; true")}',
    ]
    proc = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child", "/bin/sh", "-c",
         " && ".join(lines)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"R": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert ready in line, f"workload did not start in {root}: {line!r}"
        (init,) = children(proc.pid)
        pid = _workload(init, helper)
        cid = container_id()
        if tree is not None:
            path = tree.container_path(pod_uid(), cid)
            for p in (init, pid):
                tree.enter(path, p)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Container(proc, init, pid, cid)


def stop(c: Container) -> None:
    """Kill unshare; --kill-child takes the namespace's init and with it every process."""
    c.unshare.kill()
    c.unshare.wait()
    if c.unshare.stdout is not None:
        c.unshare.stdout.close()
