"""How many files the extractor keeps open between passes, sized for the node.

A warm pass is cheap because it re-reads open descriptors (``pread``) instead of opening
files: every counter file of every container and pod, and for every process a pidfd and
its ``/proc/<pid>/cgroup``. On a 1,000-container node that is about 8,000 counter files
and 2 × 4,100 process descriptors. Container runtimes start containers with a soft
``RLIMIT_NOFILE`` of 1,024 and a hard one of 524,288 or more (containerd without
``LimitNOFILE``, CRI-O's 1,048,576); raising the soft limit up to the hard one needs no
privilege, so the extractor does that at start (``--open-files`` asks for less).

The budget is then split by what the node needs, measured each pass: all of it when it
fits; else the details (files read every few passes) give way first, then counter files
and processes (two descriptors each) are shared in proportion. Several Scanners in one
process (benches, tests) share the limit as they need it (``Allowance``). Each kept
seq_file also holds a page of kernel memory charged to the extractor's memory cgroup,
which is why the manifests bound it instead of asking for the hard limit.
"""

from __future__ import annotations

import logging
import os
import resource
import weakref
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

RESERVE = 256
"""Descriptors left for everything else: the socket and its clients, the exit
watcher's inotify, fingerprint reads, a worker's pipes, the interpreter's own files."""
PER_PROCESS = 2
"""A process costs its pidfd and its kept ``/proc/<pid>/cgroup``."""
NR_OPEN = "/proc/sys/fs/nr_open"


@dataclass(frozen=True)
class OpenFiles:
    """The soft descriptor limit the process found and the one it runs with."""

    found: int
    soft: int
    hard: int
    error: str | None = None
    """Why the soft limit could not be raised, if it could not."""

    def describe(self) -> str:
        if self.error is not None:
            return f"open files limit {self.soft} (raising it failed: {self.error})"
        if self.soft > self.found:
            return f"open files limit raised from {self.found} to {self.soft} (hard {self.hard})"
        return f"open files limit {self.soft} (hard {self.hard})"


def _finite(limit: int) -> int:
    """RLIM_INFINITY as the kernel applies it: at most fs.nr_open descriptors."""
    if limit != resource.RLIM_INFINITY:
        return limit
    try:
        with open(NR_OPEN) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def raise_open_files(wanted: int | None = None) -> OpenFiles:
    """Raise the soft RLIMIT_NOFILE to ``wanted`` (default: the hard limit), never above
    the hard limit and never below where it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else min(wanted, hard)
    if hard == resource.RLIM_INFINITY and wanted is None:
        target = _finite(hard)
    if target <= soft:
        return OpenFiles(found=_finite(soft), soft=_finite(soft), hard=_finite(hard))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        return OpenFiles(_finite(soft), _finite(soft), _finite(hard), str(e))
    return OpenFiles(found=_finite(soft), soft=target, hard=_finite(hard))


class Allowance:
    """Descriptors one keeper of files (a Scanner) may hold: a fixed number, or what it
    holds plus what the process has free now, so keepers in one process share the limit
    as they need it and never count on the same descriptors. Released when it closes."""

    def __init__(self, fixed: int | None, held: Callable[[], int]) -> None:
        self.fixed = fixed
        self.held = held

    @property
    def total(self) -> int:
        return self.fixed if self.fixed is not None else self.held() + free()

    def release(self) -> None:
        _live.discard(self)


_live: weakref.WeakSet[Allowance] = weakref.WeakSet()
_others = [0]
"""Descriptors open besides the keepers' (counted at the latest claim)."""


def free() -> int:
    """Descriptors the process may still open for kept files: the soft limit minus the
    reserve, what else is open and what every keeper holds."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    kept = sum(a.held() for a in list(_live) if a.fixed is None)
    return max(_finite(soft) - RESERVE - _others[0] - kept, 0)


def claim(held: Callable[[], int], fixed: int | None = None) -> Allowance:
    """An allowance of ``fixed`` descriptors, or by default of what the process has
    free as it goes (``free``). ``held`` says how many the keeper holds now."""
    if fixed is None:
        try:
            open_now = len(os.listdir("/proc/self/fd"))
        except OSError:
            open_now = 64
        kept = sum(a.held() for a in list(_live) if a.fixed is None)
        _others[0] = max(open_now - kept, 0)
    allowance = Allowance(fixed, held)
    _live.add(allowance)
    return allowance


@dataclass(frozen=True)
class Split:
    """How a budget is shared for one node's needs."""

    counter_files: int
    """Descriptors allowed for the files read on every pass (and pods' net/dev)."""
    processes: int
    """Processes that may be watched (each costs ``PER_PROCESS`` descriptors)."""
    wanted_files: int
    wanted_processes: int
    detail_files: int = 0
    """Descriptors allowed for the details, which are read every few passes only."""
    wanted_details: int = 0

    @property
    def everything(self) -> bool:
        return (
            self.counter_files >= self.wanted_files
            and self.processes >= self.wanted_processes
            and self.detail_files >= self.wanted_details
        )

    def describe(self) -> str:
        files, procs = self.wanted_files + self.wanted_details, self.wanted_processes
        if self.everything:
            return f"keeping all {files} counter files and {procs} processes open"
        kept = min(self.counter_files, self.wanted_files) + min(
            self.detail_files, self.wanted_details
        )
        every = min(self.counter_files, self.wanted_files)
        need = files + PER_PROCESS * procs + RESERVE
        return (
            f"keeping {kept} of {files} counter files and "
            f"{min(self.processes, procs)} of {procs} processes open (the rest is read by "
            f"path when due; {every} of the {self.wanted_files} read on every pass are "
            f"kept); about {need} open files would keep them all"
        )


def split(total: int, counter_files: int, processes: int, details: int = 0) -> Split:
    """Everything kept when it fits in ``total`` descriptors (the rest of the budget
    shared as room to grow). Else the details go first: they are read every few passes
    only, where a file read by path costs about 4 µs more than a kept one, against every
    pass for the counter files and the processes, which are then shared in proportion
    if even they do not fit."""
    wanted = counter_files + details + PER_PROCESS * processes
    if wanted <= 0:  # nothing known yet: a blind split, half for the processes
        quarter = total // 4
        return Split(quarter, total // (2 * PER_PROCESS), 0, 0, quarter, 0)
    if wanted <= total or details == 0:
        files, kept = total * counter_files // wanted, total * details // wanted
        rest = (total - files - kept) // PER_PROCESS
        return Split(files, rest, counter_files, processes, kept, details)
    first = counter_files + PER_PROCESS * processes
    if first <= total:
        return Split(counter_files, processes, counter_files, processes, total - first, details)
    files = total * counter_files // first
    return Split(files, (total - files) // PER_PROCESS, counter_files, processes, 0, details)
