"""A node of its own on a shared machine: new PID, mount and cgroup namespaces.

Other suites on the same machine start and stop containers of their own all the time;
an agent on the host sees them, fingerprints them and watches their exits, so what it
costs says more about them than about the node a bench built. Here a bench runs in a
PID namespace (its ``/proc`` lists only its own processes) and a cgroup namespace
rooted at a fresh cgroup of every hierarchy, whose cgroupfs is mounted anew over
``/sys/fs/cgroup`` in a private mount namespace: the extractor inside sees exactly the
synthetic node and itself, as a node's extractor sees that node. The cgroups and
counters are the real kernel's; only the view is narrowed.

``run(["bench.bench_agent"])`` runs ``python -m bench.bench_agent`` so, and cleans up
the cgroup it made whatever happens inside (``--inner`` is the namespace's own side).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from bench.harness import HYBRID, remove_cgroup

ROOT = Path(__file__).resolve().parents[1]
INSIDE = "RUNTIME_INSIGHTS_BENCH_ISOLATED"
"""Set in the environment of what runs inside, so a bench does not isolate twice."""
MODULE = "RUNTIME_INSIGHTS_BENCH_MODULE"


def available() -> str | None:
    """None when a bench can be isolated here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("unshare") is None:
        return "no unshare (util-linux)"
    missing = [m for m in HYBRID.values() if not os.path.isdir(m)]
    if missing:
        return f"no cgroup hierarchy at {', '.join(missing)}"
    return None


def inside() -> bool:
    return os.environ.get(INSIDE) == "1"


def run(module: list[str]) -> int:
    """``python -m module…`` in namespaces of its own; its exit code."""
    name = f"/ri-node-{uuid.uuid4().hex[:12]}"
    for mount in HYBRID.values():
        os.makedirs(mount + name)
    procs = [f"{mount}{name}/cgroup.procs" for mount in HYBRID.values()]
    # The shell joins the fresh cgroup first, so the cgroup namespace is rooted there.
    script = (
        'for f in "$@"; do echo $$ > "$f"; done; '
        'exec unshare --pid --fork --mount --cgroup --mount-proc "$0" -m bench.isolated --inner'
    )
    env = {**os.environ, INSIDE: "1", MODULE: json.dumps(module), "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run(["sh", "-c", script, sys.executable, *procs], env=env).returncode
    finally:
        for mount in HYBRID.values():
            remove_cgroup(mount + name)


def _mount_cgroups() -> None:
    """This namespace's view: cgroupfs rooted at its cgroup, over /sys/fs/cgroup."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "cgroups", "/sys/fs/cgroup"], check=True)
    for key, path in HYBRID.items():
        os.makedirs(path)
        if key:
            subprocess.run(["mount", "-t", "cgroup", "-o", key, "cgroup", path], check=True)
        else:
            subprocess.run(["mount", "-t", "cgroup2", "cgroup2", path], check=True)


def _inner() -> int:
    _mount_cgroups()
    module = json.loads(os.environ[MODULE])
    return subprocess.run([sys.executable, "-m", *module], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(_inner() if sys.argv[1:] == ["--inner"] else run(sys.argv[1:]))
