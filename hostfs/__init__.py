"""Reading the host's kernel files (/proc, cgroupfs): cheaply, and failing in one way.

Shared by the extractor and the fingerprints package, below both: it imports nothing of
the project. ``smallread`` reads small pseudo-files with as few syscalls as possible (and
keeps the ones read every pass open); ``procfs`` reads one process's files, answering
``None`` when the process is gone and raising ``ProcReadError`` for anything else;
``fstype`` tells which filesystem an open descriptor is on (a container's files must
never be read through a kernel pseudo-filesystem); ``liveness`` whether a process is
still the one something was read from; ``clock`` reads the wall and boot clocks together,
which start times and intervals need.
"""

from hostfs.clock import Moment, boot_id, boottime, now
from hostfs.fstype import PSEUDO_FILESYSTEMS, filesystem_type, pseudo_filesystem
from hostfs.liveness import Chosen, reusable, still_running
from hostfs.procfs import (
    ProcReadError,
    ProcStat,
    clock_ticks,
    list_pids,
    parse_stat,
    read_cgroup,
    read_cmdline,
    read_comm,
    read_stat,
    start_boottime,
)
from hostfs.smallread import CHUNK, GONE, KeptFiles, read_fd, read_small

__all__ = [
    "CHUNK",
    "GONE",
    "PSEUDO_FILESYSTEMS",
    "Chosen",
    "KeptFiles",
    "Moment",
    "ProcReadError",
    "ProcStat",
    "boot_id",
    "boottime",
    "clock_ticks",
    "filesystem_type",
    "list_pids",
    "now",
    "parse_stat",
    "pseudo_filesystem",
    "read_cgroup",
    "read_cmdline",
    "read_comm",
    "read_fd",
    "read_small",
    "read_stat",
    "reusable",
    "start_boottime",
    "still_running",
]
