"""``runtime-insights fingerprint --pid PID``: the fingerprint of one process's container.

The container is found from the process's own cgroup; every process of the host in the
same container is then fingerprinted together, as a pass would. A process outside any
container is fingerprinted on its own: that process alone, not its children (``--pid 1``
is the host's init, not whatever it started). The work is done by the same worker
process as in ``extractor serve``, so a hostile container costs at most its budget.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from extractor.cgroups.paths import parse_cgroup_path
from extractor.contract import Fingerprint
from extractor.fingerprinting import GRACE_SECONDS, PENDING, START_SECONDS, Fingerprints
from hostfs import ProcReadError, list_pids, read_cgroup, read_stat


def container_of(proc_root: str, pid: int) -> str | None:
    """The container id named by ``/proc/<pid>/cgroup``, None outside containers."""
    try:
        text = read_cgroup(proc_root, pid)
    except ProcReadError:
        return None
    for line in (text or "").splitlines():
        ident = parse_cgroup_path(line)
        if ident.runtime is not None and ident.container_id:
            return ident.container_id
    return None


def container_pids(proc_root: str, container_id: str) -> list[int]:
    """Every process of the host whose cgroup names ``container_id``."""
    return sorted(p for p in list_pids(proc_root) if container_of(proc_root, p) == container_id)


def fingerprint_json(fp: Fingerprint) -> dict[str, object]:
    """insights-runtime-extractor's fields, then our extra fields and any error."""
    out = fp.compatible()
    out.update(fp.model_extra or {})
    if fp.error:
        out["error"] = fp.error
    if fp.pending:
        out["pending"] = True
    return out


def run_fingerprint(args: argparse.Namespace) -> int:
    proc_root: str = args.proc_root
    pid: int = args.pid
    try:
        alive = read_stat(proc_root, pid) is not None
    except ProcReadError as e:
        print(f"runtime-insights fingerprint: {e}", file=sys.stderr)
        return 1
    if not alive:
        print(f"runtime-insights fingerprint: no process {pid} in {proc_root}", file=sys.stderr)
        return 1
    container_id = container_of(proc_root, pid)
    pids = container_pids(proc_root, container_id) if container_id else [pid]
    fingerprints = Fingerprints(
        proc_root,
        max_seconds=args.fingerprint_timeout,
        pass_seconds=None,
        alone=container_id is None,
    )
    try:
        key = container_id or f"pid-{pid}"
        fingerprints(key, pids or [pid])
        fingerprints.wait(START_SECONDS + args.fingerprint_timeout + GRACE_SECONDS)
        fp = fingerprints.current(key) or PENDING
    finally:
        fingerprints.close()
    sys.stdout.buffer.write(orjson.dumps(fingerprint_json(fp), option=orjson.OPT_INDENT_2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return 0
