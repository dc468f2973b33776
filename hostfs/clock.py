"""The node's two clocks, read together: the wall clock and the boot clock.

Why both: process start times in /proc/<pid>/stat are clock ticks of CLOCK_BOOTTIME, and
/proc/stat's ``btime`` (the wall time of boot) is truncated to whole seconds, so
``btime + ticks/HZ`` puts every start up to a second early. The offset between
CLOCK_REALTIME and CLOCK_BOOTTIME, read at the same moment, is exact to microseconds.
The boot clock also never steps (NTP, a manual ``date``), counts suspended time and is
the same for every process of the node, so intervals and retentions are measured on it;
the wall clock only names moments for people and for OpenMeter.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from hostfs.smallread import read_small


@dataclass(frozen=True, slots=True)
class Moment:
    """One instant on both clocks, in seconds."""

    wall: float
    """CLOCK_REALTIME: unix seconds."""
    boot: float
    """CLOCK_BOOTTIME: seconds since boot, suspended time included."""

    @property
    def offset(self) -> float:
        """Wall time of boot: add it to a boot-clock reading to get unix seconds."""
        return self.wall - self.boot

    def wall_of(self, boot: float) -> float:
        """The unix time of boot-clock reading ``boot``, by this moment's offset."""
        return self.offset + boot


def now() -> Moment:
    """Both clocks now; the boot clock is read on both sides of the wall clock and
    averaged, so the pair is as close to one instant as two syscalls allow."""
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    wall = time.time()
    after = time.clock_gettime(time.CLOCK_BOOTTIME)
    return Moment(wall=wall, boot=(before + after) / 2)


def boottime() -> float:
    """CLOCK_BOOTTIME alone, for intervals and retentions."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id(proc_root: str = "/proc") -> str | None:
    """The kernel's random id of this boot: boot-clock readings compare only within one
    boot. None when it cannot be read (an old kernel, a fake /proc)."""
    try:
        text = read_small(os.path.join(proc_root, "sys/kernel/random/boot_id"), 128)
    except OSError:
        return None
    value = text.decode("ascii", "replace").strip()
    return value or None
