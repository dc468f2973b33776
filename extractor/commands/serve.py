"""``runtime-insights extractor serve``: the extractor as the DaemonSet runs it.

One Scanner lives as long as the process: it keeps counter files and pidfds open across
passes and owns the exit watcher, so each snapshot lists the pods that ended lately.
Fingerprints are computed beside the passes by a worker process
(``extractor/fingerprinting.py``), so no pass waits on a container's files.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from extractor.commands.options import host_paths
from extractor.connguard import Limits
from extractor.contract import Snapshot
from extractor.fingerprinting import Fingerprints
from extractor.identify import RuntimeState
from extractor.scanner import NodeUnreadable, Scanner
from extractor.server import ServeError, SnapshotSource, serve


def snapshot_taker(scanner: Scanner, fingerprints: Fingerprints | None) -> Callable[[], Snapshot]:
    """One pass with runtime labels and (unless None) fingerprints, reusing caches."""
    identify = RuntimeState(scanner.paths).lookup

    def take() -> Snapshot:
        if fingerprints is not None:
            fingerprints.begin_pass()
        return scanner.take(identify=identify, fingerprint=fingerprints)

    return take


def run_serve(args: argparse.Namespace) -> int:
    """Exit 0 after a clean shutdown; 2 with one line on stderr if serving is impossible."""
    try:
        scanner = Scanner(host_paths(args), watch_exits=True)
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
    try:
        source = SnapshotSource(snapshot_taker(scanner, fingerprints))
        asyncio.run(serve(args.socket, source, limits))
    except ServeError as e:
        print(f"runtime-insights extractor serve: {e}", file=sys.stderr)
        return 2
    finally:
        if fingerprints is not None:
            fingerprints.close()
        scanner.close()
    return 0
