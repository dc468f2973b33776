"""Times as the meter counts them: integer nanoseconds of the node's boot clock.

Why: the extractor dates everything on CLOCK_BOOTTIME too (``Snapshot.taken_boottime``),
which never steps, so a wall clock set back or forward neither stops metering nor makes
an interval negative; and integers make every sum of intervals telescope exactly (the
runtime of a container over many windows adds up to its lifetime to the nanosecond).
"""

from __future__ import annotations

import time

TICK_NS = 10_000_000
"""USER_HZ is 100 on every Linux ABI: process start times are truncated to 10 ms."""


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def boottime_ns() -> int:
    """The exporter's own reading of the boot clock (the same clock as the extractor's)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def overlap_ns(start: int | None, end: int | None, since: int | None, until: int) -> int:
    """How much of the run [start, end] (end None: still running) lies in (since, until].
    A None ``since`` counts from the run's start; a run with no known start counts from
    ``since``; with neither nothing is known and nothing counted."""
    if start is None and since is None:
        return 0
    if since is None:
        lo = start
    elif start is None:
        lo = since
    else:
        lo = max(start, since)
    assert lo is not None
    hi = until if end is None else min(end, until)
    return max(hi - lo, 0)
