"""The privileged node reader: one pass over /proc and the cgroup tree → ``Snapshot``.

Data flow: ``discover`` (processes → containers, with ``cgroups.paths`` naming them from
their cgroup) → ``cgroups.counters`` (the kernel's counters) → ``identify`` (names from
the runtime's state files) → ``fingerprinting`` (the ``fingerprints`` package) →
``exitwatch`` (final counters of pods that just ended) → ``scanner`` assembles the
``contract.Snapshot`` → ``server`` serves it on a unix socket; ``commands`` are the
command-line entry points.

Public surface below. The exporter may import only ``extractor.contract``
(tests/test_architecture.py checks), so names load on first use (PEP 562): importing the
contract never loads the node reader.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from extractor.cgroups.paths import CgroupIdentity, parse_cgroup_path
    from extractor.hostpaths import HostPaths
    from extractor.scanner import NodeUnreadable, Scanner, take_snapshot

__all__ = [
    "CgroupIdentity",
    "HostPaths",
    "NodeUnreadable",
    "Scanner",
    "parse_cgroup_path",
    "take_snapshot",
]
_WHERE = {
    "CgroupIdentity": "extractor.cgroups.paths",
    "parse_cgroup_path": "extractor.cgroups.paths",
    "HostPaths": "extractor.hostpaths",
    "NodeUnreadable": "extractor.scanner",
    "Scanner": "extractor.scanner",
    "take_snapshot": "extractor.scanner",
}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'extractor' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
