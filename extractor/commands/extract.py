"""``runtime-insights extract``: one pass over this machine, printed."""

from __future__ import annotations

import argparse
import sys

from extractor.commands.options import host_paths
from extractor.commands.render import render_json, render_table
from extractor.identify import RuntimeState
from extractor.scanner import NodeUnreadable, take_snapshot


def run_extract(args: argparse.Namespace) -> int:
    """Exit 0 with the snapshot on stdout; 2 with one line on stderr if no pass is possible."""
    paths = host_paths(args)
    fingerprint = None
    if not args.no_fingerprints:
        from extractor.fingerprinting import Fingerprints  # loads the detectors

        fingerprint = Fingerprints(paths.proc_root)
    try:
        snapshot = take_snapshot(
            paths, identify=RuntimeState(paths).lookup, fingerprint=fingerprint
        )
    except NodeUnreadable as e:
        print(f"runtime-insights extract: {e}", file=sys.stderr)
        return 2
    text = render_table(snapshot) if args.format == "table" else render_json(snapshot)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
