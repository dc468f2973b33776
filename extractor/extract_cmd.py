"""``runtime-insights extract``: one pass over this machine, printed.

Runtime labels (``extractor.identify``) and fingerprints (``fingerprints.engine``) are
plug-ins: the pass works without them (and with ``--no-fingerprints``), it just knows
less about each container.
"""

from __future__ import annotations

import argparse
import sys

from extractor.hostpaths import DEFAULT_CONTAINERD_STATE, DEFAULT_CRIO_STATE, HostPaths
from extractor.snapshot import FingerprintFn, Identify, NodeUnreadable, take_snapshot


def host_paths(args: argparse.Namespace) -> HostPaths:
    return HostPaths(
        proc_root=args.proc_root,
        cgroup_root=args.cgroup_root,
        containerd_state=tuple(args.containerd_state or DEFAULT_CONTAINERD_STATE),
        crio_state=tuple(args.crio_state or DEFAULT_CRIO_STATE),
    )


def _identify(paths: HostPaths) -> Identify | None:
    try:
        from extractor.identify import RuntimeState
    except ModuleNotFoundError:
        return None
    lookup: Identify = RuntimeState(paths).lookup
    return lookup


def _fingerprint(proc_root: str) -> FingerprintFn | None:
    try:
        from fingerprints.engine import Fingerprinter
    except ModuleNotFoundError:
        return None
    return Fingerprinter(proc_root).fingerprint


def run_extract(args: argparse.Namespace) -> int:
    """Exit 0 with the snapshot on stdout; 2 with one line on stderr if no pass is possible."""
    paths = host_paths(args)
    fingerprint = None if args.no_fingerprints else _fingerprint(paths.proc_root)
    try:
        snapshot = take_snapshot(paths, identify=_identify(paths), fingerprint=fingerprint)
    except NodeUnreadable as e:
        print(f"runtime-insights extract: {e}", file=sys.stderr)
        return 2
    from extractor.render import render_json, render_table

    text = render_table(snapshot) if args.format == "table" else render_json(snapshot)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
