"""Whether a fingerprint still describes its container: the process it was read from
runs on, with the same start time, and the container did not change its mind about its
processes while it had only wrappers to show.

This is the whole cost of a warm pass, so it reads nothing but the host's
``/proc/<pid>/stat`` and the ``exe`` link (no container file), and it is kept apart from
the engine: the extractor asks it for every container on every pass without loading a
single detector or waking the worker that runs them (``extractor/fingerprinting.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hostfs import ProcReadError, read_stat


@dataclass(frozen=True)
class Chosen:
    """The process a fingerprint was read from: ``(pid, start_ticks)`` names it exactly."""

    pid: int
    start_ticks: int


def still_running(proc_root: str, chosen: Chosen) -> bool:
    """True while that very process runs (not exited, not a zombie, PID not reused)."""
    try:
        st = read_stat(proc_root, chosen.pid)
    except ProcReadError:
        return False
    if st is None or st.start_ticks != chosen.start_ticks:
        return False
    try:  # a zombie keeps its stat but has no executable any more
        os.readlink(f"{proc_root}/{chosen.pid}/exe")
    except OSError:
        return False
    return True


def reusable(
    proc_root: str, chosen: Chosen, found_kind: bool, old_pids: list[int], pids: list[int]
) -> bool:
    """A fingerprint read from ``chosen`` while the container had ``old_pids`` (sorted)
    still holds for a container that now has ``pids``: its process runs on and, when
    no kind was found (only a wrapper was there yet), the processes did not change."""
    if not still_running(proc_root, chosen):
        return False
    return found_kind or sorted(pids) == old_pids
