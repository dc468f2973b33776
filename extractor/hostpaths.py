"""Where the host's kernel and runtime state are visible to the extractor.

In a DaemonSet these are the host's paths mounted elsewhere (or the same paths with
hostPID); tests point them at fixture trees and temp dirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CONTAINERD_STATE = ("/run/containerd/io.containerd.runtime.v2.task",)
DEFAULT_CRIO_STATE = ("/run/containers/storage",)


@dataclass(frozen=True)
class HostPaths:
    proc_root: str = "/proc"
    cgroup_root: str = "/sys/fs/cgroup"
    containerd_state: tuple[str, ...] = field(default=DEFAULT_CONTAINERD_STATE)
    crio_state: tuple[str, ...] = field(default=DEFAULT_CRIO_STATE)
