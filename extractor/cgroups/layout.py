"""Where a cgroup's counter files live on this node's cgroup filesystem.

The cgroup root may hold a pure v2 hierarchy (``cgroup.controllers`` at the top), v1
controller directories (``cpu``, ``cpuacct``, comma-joined ``cpu,cpuacct`` with
symlinks, ``memory``, ``pids``, ``blkio``, ``name=systemd`` as ``systemd``) or both with v2 at
``unified/`` (hybrid). On v1 and hybrid nodes counters are read from the v1 controllers,
because the hybrid ``0::`` line usually names systemd's unit, not the container.

Paths in ``/proc/<pid>/cgroup`` are relative to the *reader's* cgroup namespace. When the
extractor runs in a private one, :func:`namespace_base` finds the host-absolute path of
its namespace root without any privilege beyond hostPID and a read-only view of the
host's cgroupfs: the host init's path tells how deep that root is (one ``..`` per level),
and the one directory at that depth whose ``cgroup.procs`` lists our own PID is it.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from extractor.cgroups.paths import file_lines, pick_line
from extractor.contract import CgroupVersion
from hostfs import read_small

UNIFIED = ""
"""Hierarchy key of the v2 hierarchy; v1 hierarchies are keyed by controller name."""

ACCOUNTED_V1 = ("cpuacct", "cpu", "memory", "pids", "blkio")


class CgroupFsError(Exception):
    """The cgroup root holds no cgroup filesystem the extractor understands."""


@dataclass(frozen=True)
class Layout:
    """The hierarchies mounted under one cgroup root."""

    root: str
    version: CgroupVersion
    v1: dict[str, str] = field(default_factory=dict)
    unified: str | None = None

    def hierarchies(self) -> tuple[str, ...]:
        """Hierarchies a pass reads counters from, in the order they are read."""
        if self.version == "v2":
            return (UNIFIED,)
        return tuple(c for c in ACCOUNTED_V1 if c in self.v1)

    def mount(self, key: str) -> str | None:
        return self.unified if key == UNIFIED else self.v1.get(key)

    def directory(self, key: str, cgroup_path: str) -> str | None:
        """The cgroupfs directory of ``cgroup_path`` in hierarchy ``key``."""
        mount = self.mount(key)
        if mount is None:
            return None
        rel = cgroup_path.strip("/")
        return f"{mount}/{rel}" if rel else mount


def _is_hierarchy(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "cgroup.procs"))


def detect(cgroup_root: str) -> Layout:
    """Find the hierarchies under ``cgroup_root``; CgroupFsError when there are none."""
    if not os.path.isdir(cgroup_root):
        raise CgroupFsError(f"cgroup root {cgroup_root!r} is not a directory")
    if os.path.isfile(os.path.join(cgroup_root, "cgroup.controllers")):
        return Layout(root=cgroup_root, version="v2", unified=cgroup_root)
    v1: dict[str, str] = {}
    unified: str | None = None
    try:
        entries = sorted(os.listdir(cgroup_root))
    except OSError as e:
        raise CgroupFsError(f"cgroup root {cgroup_root!r}: {e.strerror or e}") from None
    for name in entries:
        path = os.path.join(cgroup_root, name)
        if not _is_hierarchy(path):
            continue
        if os.path.isfile(os.path.join(path, "cgroup.controllers")):
            unified = path
            continue
        for controller in name.split(","):
            v1.setdefault(controller, path)
    if any(c in v1 for c in ACCOUNTED_V1):
        return Layout(cgroup_root, "hybrid" if unified else "v1", v1, unified)
    if unified is not None:  # no v1 controller worth reading: v2 it is
        return Layout(root=cgroup_root, version="v2", unified=unified)
    raise CgroupFsError(f"no cgroup filesystem found under {cgroup_root!r}")


def path_in(layout: Layout, key: str, cgroup_text: str) -> str | None:
    """A process's cgroup path in hierarchy ``key`` from its whole /proc/<pid>/cgroup."""
    if key != UNIFIED:
        return pick_line(cgroup_text, key)
    for line in file_lines(cgroup_text):
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def resolve(base: str, path: str) -> str:
    """Host-absolute form of a namespace-relative path, given the namespace root ``base``."""
    if base == "/" and not path.startswith(("..", "/..")):
        return path
    return posixpath.normpath(posixpath.join(base, path.lstrip("/"))) if path else base


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def namespace_base(layout: Layout, key: str, proc_root: str) -> str:
    """Host-absolute path of the reader's cgroup namespace root in hierarchy ``key``.

    ``/`` when the reader shares the host's namespace. Raises CgroupFsError when the
    root cannot be found (host cgroupfs not mounted, host init not visible).
    """
    try:
        init_text = read_small(f"{proc_root}/1/cgroup").decode()
    except OSError:
        return "/"  # no host init in view: nothing says the paths are relative
    init_path = path_in(layout, key, init_text) or "/"
    ups = 0
    for part in init_path.strip("/").split("/"):
        if part != "..":
            break
        ups += 1
    if ups == 0:
        return "/"
    try:
        own_text = read_small(f"{proc_root}/self/cgroup").decode()
        own_pid = os.readlink(f"{proc_root}/self")
    except OSError as e:
        raise CgroupFsError(f"cannot read this process's own cgroup: {e}") from None
    own_path = path_in(layout, key, own_text) or "/"
    mount = layout.mount(key)
    if mount is None:
        raise CgroupFsError(f"hierarchy {key or 'unified'} is not mounted")
    for candidate in _dirs_at(mount, ups + _depth(own_path)):
        rel = "/" + os.path.relpath(candidate, mount)
        if own_path != "/" and not rel.endswith(own_path.rstrip("/")):
            continue
        try:
            procs = read_small(f"{candidate}/cgroup.procs").split()
        except OSError:
            continue
        if own_pid.encode() in procs:
            cut = _depth(own_path)
            parts = rel.strip("/").split("/")
            return "/" + "/".join(parts[: len(parts) - cut])
    raise CgroupFsError(f"cannot find this process's cgroup namespace root under {mount}")


def _dirs_at(top: str, depth: int) -> list[str]:
    """Cgroup directories exactly ``depth`` levels below ``top``."""
    level = [top]
    for _ in range(depth):
        nxt: list[str] = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    nxt.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
        level = nxt
    return level
