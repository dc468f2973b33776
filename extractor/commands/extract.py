"""``runtime-insights extract``: one pass over this machine, printed."""

from __future__ import annotations

import argparse
import sys

from extractor.commands.options import host_paths
from extractor.commands.render import render_json, render_table
from extractor.fingerprinting import Fingerprints
from extractor.identify import RuntimeState
from extractor.scanner import NodeUnreadable, take_snapshot


def run_extract(args: argparse.Namespace) -> int:
    """Exit 0 with the snapshot on stdout; 2 with one line on stderr if no pass is possible.

    Fingerprints come from the worker process as in ``extractor serve``; this waits for
    them (each bounded by ``--fingerprint-timeout``) before printing."""
    paths = host_paths(args)
    fingerprints = None
    if not args.no_fingerprints:
        fingerprints = Fingerprints(
            paths.proc_root, max_seconds=args.fingerprint_timeout, pass_seconds=None
        )
    try:
        snapshot = take_snapshot(
            paths, identify=RuntimeState(paths).lookup, fingerprint=fingerprints
        )
        if fingerprints is not None:
            fingerprints.settle(snapshot)
    except NodeUnreadable as e:
        print(f"runtime-insights extract: {e}", file=sys.stderr)
        return 2
    finally:
        if fingerprints is not None:
            fingerprints.close()
    text = render_table(snapshot) if args.format == "table" else render_json(snapshot)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
