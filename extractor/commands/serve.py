"""``runtime-insights extractor serve``: the extractor as the DaemonSet runs it.

One Scanner lives as long as the process: it keeps counter files and pidfds open across
passes and owns the exit watcher, so each snapshot lists the pods that ended lately.
Fingerprints are computed beside the passes by a worker process
(``extractor/fingerprinting.py``), so no pass waits on a container's files. The
watcher's tombstones are kept in ``--state-dir`` (by default the socket's directory, the
one place the read-only extractor writes anyway), so a restarted extractor still lists a
pod that ended just before.
Before listening it raises its open-files limit (``extractor.descriptors``) and takes a
first pass, so the start line says what the node needs and what is kept open, and the
exporter's first poll finds warm caches.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable

from extractor.commands.options import host_paths
from extractor.connguard import Limits
from extractor.contract import Snapshot
from extractor.descriptors import OpenFiles, raise_open_files
from extractor.fingerprinting import Fingerprints
from extractor.identify import RuntimeState
from extractor.scanner import DETAILS_EVERY, NodeUnreadable, Scanner
from extractor.server import ServeError, SnapshotSource, serve

log = logging.getLogger("runtime_insights.extractor")


def snapshot_taker(scanner: Scanner, fingerprints: Fingerprints | None) -> Callable[[], Snapshot]:
    """One pass with runtime labels and (unless None) fingerprints, reusing caches."""
    identify = RuntimeState(scanner.paths).lookup

    def take() -> Snapshot:
        if fingerprints is not None:
            fingerprints.begin_pass()
        return scanner.take(identify=identify, fingerprint=fingerprints)

    return take


def state_directory(args: argparse.Namespace) -> str | None:
    """``--state-dir``, defaulting to the socket's directory; None for ``none``."""
    chosen: str | None = getattr(args, "state_dir", None)
    if chosen == "none":
        return None
    return chosen or os.path.dirname(os.path.abspath(args.socket))


def describe(scanner: Scanner, socket: str, fingerprints: bool, state_dir: str | None) -> str:
    """What this extractor runs with, in one line for the start of its log."""
    layout, paths = scanner.layout, scanner.paths
    if scanner.exits is not None:
        watcher = f"exit watcher on ({layout.unified})"
    elif layout.unified is None:
        watcher = "exit watcher off (no cgroup2 hierarchy)"
    else:
        watcher = "exit watcher off (could not start, see above)"
    mode = {"v1": "cgroup v1", "v2": "cgroup v2", "hybrid": "cgroup hybrid (v1 + unified)"}
    return (
        f"socket {socket}; {mode.get(layout.version, layout.version)} at {layout.root}; "
        f"proc {paths.proc_root}; {watcher}; fingerprints {'on' if fingerprints else 'off'}; "
        f"containerd state {', '.join(paths.containerd_state)}; "
        f"CRI-O state {', '.join(paths.crio_state)}; "
        f"tombstones kept in {state_dir or 'memory only'}"
    )


def first_pass(take: Callable[[], Snapshot], scanner: Scanner, limit: OpenFiles) -> Snapshot | None:
    """One pass before serving, reported in one line; a failure is logged, not fatal
    (the same error then answers the exporter's polls)."""
    started = time.process_time()
    try:
        snapshot = take()
    except Exception as e:
        log.error("first pass failed: %s: %s; %s", type(e).__name__, e, limit.describe())
        return None
    log.info(
        "first pass: %d containers, %d pods, %d processes in %.0f ms of CPU; %s; %s",
        len(snapshot.containers),
        len(snapshot.pods),
        scanner.discoverer.listed,
        (time.process_time() - started) * 1e3,
        limit.describe(),
        scanner.budget.describe(),
    )
    return snapshot


def run_serve(args: argparse.Namespace) -> int:
    """Exit 0 after a clean shutdown; 2 with one line on stderr if serving is impossible."""
    limit = raise_open_files(args.open_files)
    state_dir = state_directory(args)
    if state_dir is not None and not os.path.isdir(state_dir):
        print(
            f"runtime-insights extractor serve: --state-dir {state_dir}: no such directory",
            file=sys.stderr,
        )
        return 2
    try:
        every = args.details_every or DETAILS_EVERY
        scanner = Scanner(
            host_paths(args), watch_exits=True, state_dir=state_dir, details_every=every
        )
    except NodeUnreadable as e:
        print(f"runtime-insights extractor serve: {e}", file=sys.stderr)
        return 2
    fingerprints = None
    if not args.no_fingerprints:
        fingerprints = Fingerprints(
            scanner.paths.proc_root,
            max_seconds=args.fingerprint_timeout,
            pass_seconds=args.fingerprint_pass_seconds,
        )
    limits = Limits(args.header_timeout, args.idle_timeout, args.max_connections)
    log.info(
        "extractor starting: %s",
        describe(scanner, args.socket, not args.no_fingerprints, state_dir),
    )
    try:
        take = snapshot_taker(scanner, fingerprints)
        first_pass(take, scanner, limit)
        source = SnapshotSource(take)
        asyncio.run(serve(args.socket, source, limits))
    except ServeError as e:
        print(f"runtime-insights extractor serve: {e}", file=sys.stderr)
        return 2
    finally:
        if fingerprints is not None:
            fingerprints.close()
        scanner.close()
    return 0
