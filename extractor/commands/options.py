"""Where the host's files are, from the options every extractor command takes
(``--proc-root``, ``--cgroup-root``, … defined in runtime_insights/cli.py)."""

from __future__ import annotations

import argparse

from extractor.hostpaths import DEFAULT_CONTAINERD_STATE, DEFAULT_CRIO_STATE, HostPaths


def host_paths(args: argparse.Namespace) -> HostPaths:
    return HostPaths(
        proc_root=args.proc_root,
        cgroup_root=args.cgroup_root,
        containerd_state=tuple(args.containerd_state or DEFAULT_CONTAINERD_STATE),
        crio_state=tuple(args.crio_state or DEFAULT_CRIO_STATE),
    )
