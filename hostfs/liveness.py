"""Whether something read from a process still describes it: the very process (PID and
start time) runs on, and the set of processes it was read among did not change while
what was read was incomplete.

A fingerprint is cached by this rule (``fingerprints/engine.py`` in process,
``extractor/fingerprinting.py`` beside its worker), and it is the whole cost of a warm
pass, so it reads nothing but the host's ``/proc/<pid>/stat`` and the ``exe`` link (no
container file); it lives here, below both, so the extractor checks every container
every pass without loading a single detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hostfs.procfs import ProcReadError, read_stat


@dataclass(frozen=True)
class Chosen:
    """The process something was read from: ``(pid, start_ticks)`` names it exactly."""

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
    proc_root: str, chosen: Chosen, complete: bool, old_pids: list[int], pids: list[int]
) -> bool:
    """What was read from ``chosen`` while the container had ``old_pids`` (sorted) still
    holds for a container that now has ``pids``: its process runs on and, unless it was
    ``complete`` (a fingerprint that found its kind; not one of a wrapper still starting
    the workload), the processes did not change."""
    if not still_running(proc_root, chosen):
        return False
    return complete or sorted(pids) == old_pids
