"""Cgroups: which container a cgroup path names, where its files are, what it counted.

``paths`` reads a cgroup path (or a line of ``/proc/<pid>/cgroup``) as runtime, container
id, pod UID and QoS, for every layout the kubelet and runtimes make; ``layout`` finds the
node's hierarchies (v1, v2, hybrid) and a private cgroup namespace's base; ``counters``
reads one cgroup's counter files into the contract's ``Usage``.
"""

from extractor.cgroups.counters import account, plan
from extractor.cgroups.files import VANISHED, field_of
from extractor.cgroups.layout import UNIFIED, CgroupFsError, Layout, detect, namespace_base
from extractor.cgroups.paths import CgroupIdentity, parse_cgroup_path

__all__ = [
    "UNIFIED",
    "VANISHED",
    "CgroupFsError",
    "CgroupIdentity",
    "Layout",
    "account",
    "detect",
    "field_of",
    "namespace_base",
    "parse_cgroup_path",
    "plan",
]
