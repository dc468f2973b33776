"""``runtime-insights extractor serve``: the extractor as the DaemonSet runs it.

One Scanner lives as long as the process: it keeps counter files and pidfds open across
passes and owns the exit watcher, so each snapshot lists the pods that ended lately.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from extractor.commands.options import host_paths
from extractor.contract import Snapshot
from extractor.identify import RuntimeState
from extractor.scanner import FingerprintFn, NodeUnreadable, Scanner
from extractor.server import ServeError, SnapshotSource, serve


def snapshot_taker(scanner: Scanner, fingerprints: bool) -> Callable[[], Snapshot]:
    """One pass with runtime labels and (unless disabled) fingerprints, reusing caches."""
    identify = RuntimeState(scanner.paths).lookup
    fingerprint: FingerprintFn | None = None
    if fingerprints:
        from extractor.fingerprinting import Fingerprints  # loads the detectors

        fingerprint = Fingerprints(scanner.paths.proc_root)

    def take() -> Snapshot:
        return scanner.take(identify=identify, fingerprint=fingerprint)

    return take


def run_serve(args: argparse.Namespace) -> int:
    """Exit 0 after a clean shutdown; 2 with one line on stderr if serving is impossible."""
    try:
        scanner = Scanner(host_paths(args), watch_exits=True)
    except NodeUnreadable as e:
        print(f"runtime-insights extractor serve: {e}", file=sys.stderr)
        return 2
    try:
        source = SnapshotSource(snapshot_taker(scanner, not args.no_fingerprints))
        asyncio.run(serve(args.socket, source))
    except ServeError as e:
        print(f"runtime-insights extractor serve: {e}", file=sys.stderr)
        return 2
    finally:
        scanner.close()
    return 0
