"""Which files a reading of one cgroup takes, and the primitives that read numbers.

``gather_v1`` and ``gather_v2`` read a cgroup's files through a ``Read`` into a dict
keyed by file name, choosing among the kernel's alternatives in the order of their
precision and noting what failed; optional files a kernel or controller may not offer
(``memory.peak`` before 5.19, ``io.stat`` without the io controller, PSI with
``psi=0``) cost nothing when absent. Pressure stall information exists only in cgroup
v2: on a hybrid node it is read from the cgroup's directory at the same path in the
unified hierarchy, where runc and systemd create every container and pod cgroup too.

A caller that read the same files before can read them again in one go
(``hostfs.KeptFiles.read_group``) and hand the dict to ``counters.parse``: ``V1_FILES``
says where each file lives, ``EVERY_PASS`` which ones a pass needs fresh.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping

from extractor.cgroups.layout import UNIFIED, Layout
from hostfs import GONE

Read = Callable[[str], bytes]
"""Reads one small file whole; raises OSError."""

Files = dict[str, bytes]
"""What a gather read: file name (``memory.stat``) → its bytes."""

VANISHED = "cgroup vanished"
"""The error text of a file whose cgroup was removed while being read."""

ABSENT = frozenset({errno.ENOENT, errno.EOPNOTSUPP})
"""How an optional file says it is not offered (EOPNOTSUPP: PSI switched off per cgroup)."""

V1_FILES: dict[str, str] = {
    "cpuacct.usage": "cpuacct",
    "cpuacct.usage_all": "cpuacct",
    "cpuacct.usage_user": "cpuacct",
    "cpuacct.usage_sys": "cpuacct",
    "cpuacct.stat": "cpuacct",
    "cpu.stat": "cpu",
    "cpu.cfs_quota_us": "cpu",
    "cpu.cfs_period_us": "cpu",
    "memory.usage_in_bytes": "memory",
    "memory.stat": "memory",
    "memory.limit_in_bytes": "memory",
    "memory.max_usage_in_bytes": "memory",
    "memory.oom_control": "memory",
    "pids.current": "pids",
    "blkio.throttle.io_service_bytes_recursive": "blkio",
    "blkio.throttle.io_serviced_recursive": "blkio",
    "blkio.throttle.io_service_bytes": "blkio",
    "blkio.throttle.io_serviced": "blkio",
    "cpu.pressure": UNIFIED,
    "memory.pressure": UNIFIED,
    "io.pressure": UNIFIED,
}
"""Every v1 (and hybrid) file a reading may take → the hierarchy it lives in."""

EVERY_PASS = {
    "v1": frozenset({"cpuacct.usage", "memory.usage_in_bytes", "memory.stat"}),
    "v2": frozenset({"cpu.stat", "memory.current", "memory.stat"}),
}
"""Per cgroup version, the files whose values metering, the HPA and ``kubectl top`` need
from every pass: CPU time, memory usage and working set (v2's ``cpu.stat`` brings the
user/system split and throttling along). A kept reader may re-read the others less
often, saying when (``details.Details.read_at``)."""


def every_pass(layout: Layout) -> frozenset[str]:
    return EVERY_PASS["v2" if layout.version == "v2" else "v1"]


class _Gather:
    """Reads files of one directory into ``files``; failures go to ``errors``."""

    __slots__ = ("base", "errors", "files", "read")

    def __init__(self, read: Read, files: Files, errors: list[str]) -> None:
        self.read = read
        self.files = files
        self.errors = errors
        self.base = ""

    def take(self, name: str, optional: bool = False) -> bool:
        """Whether ``name`` could be read (an absent optional file is no error)."""
        path = self.base + name
        try:
            self.files[name] = self.read(path)
        except OSError as e:
            if not (optional and e.errno in ABSENT):
                reason = VANISHED if e.errno in GONE else (e.strerror or str(e))
                self.errors.append(f"{path}: {reason}")
            return False
        return True


def gather_v2(directory: str, read: Read, errors: list[str]) -> Files:
    """``cpu.stat`` (µs), the memory, io and pids files where those controllers are on,
    and the pressure files."""
    files: Files = {}
    g = _Gather(read, files, errors)
    g.base = directory + "/"
    if g.take("cpu.stat"):
        g.take("cpu.max", True)
    if g.take("memory.current", True):
        g.take("memory.stat")
        g.take("memory.peak", True)
        g.take("memory.max", True)
        g.take("memory.events", True)
    if not g.take("pids.current", True):
        g.take("cgroup.procs")
    g.take("io.stat", True)
    for resource in ("cpu", "memory", "io"):
        g.take(f"{resource}.pressure", True)
    return files


def gather_v1(directories: Mapping[str, str], read: Read, errors: list[str]) -> Files:
    """The v1 controllers' files, in the order of the kernel's precision where it offers
    alternatives (user/system split, recursive block I/O), plus pressure on hybrid."""
    files: Files = {}
    g = _Gather(read, files, errors)
    acct = directories.get("cpuacct")
    if acct is not None:
        g.base = acct + "/"
        if g.take("cpuacct.usage"):
            # cpuacct.usage_all lists per CPU the very values usage_user/usage_sys sum
            # (both come from cpuacct_cpuusage_read, Linux ≥ 4.7); cpuacct.stat's
            # USER_HZ ticks are the fallback for older kernels.
            if (
                not g.take("cpuacct.usage_all", True)
                or sum_per_cpu(files["cpuacct.usage_all"]) is None
            ):
                files.pop("cpuacct.usage_all", None)
                if not (g.take("cpuacct.usage_user", True) and g.take("cpuacct.usage_sys", True)):
                    g.take("cpuacct.stat")
            sched = directories.get("cpu")
            if sched is not None:
                g.base = sched + "/"
                g.take("cpu.stat")
                g.take("cpu.cfs_quota_us", True)
                g.take("cpu.cfs_period_us", True)
    mem = directories.get("memory")
    if mem is not None:
        g.base = mem + "/"
        if g.take("memory.usage_in_bytes"):
            g.take("memory.stat")
            g.take("memory.limit_in_bytes")
            g.take("memory.max_usage_in_bytes")
            g.take("memory.oom_control", True)
    pids = directories.get("pids")
    if pids is not None:
        g.base = pids + "/"
        g.take("pids.current")
    blkio = directories.get("blkio")
    if blkio is not None:
        # The throttle statistics count what the block layer let through, whatever the
        # I/O scheduler; the _recursive files (Linux ≥ 4.2) include the cgroup's
        # descendants, exited ones too, the plain ones its own I/O only.
        g.base = blkio + "/"
        if g.take("blkio.throttle.io_service_bytes_recursive", True):
            g.take("blkio.throttle.io_serviced_recursive")
        elif g.take("blkio.throttle.io_service_bytes", True):
            g.take("blkio.throttle.io_serviced")
    unified = directories.get(UNIFIED)
    if unified is not None:
        g.base = unified + "/"
        for resource in ("cpu", "memory", "io"):
            g.take(f"{resource}.pressure", True)
    return files


class Values:
    """Turns gathered files into numbers; what is not one becomes an error with its path
    (worked out only then: a parse that finds nothing wrong pays nothing for it)."""

    __slots__ = ("dirs", "errors", "files", "v2")

    def __init__(self, files: Files, errors: list[str], dirs: Mapping[str, str], v2: bool) -> None:
        self.files = files
        self.errors = errors
        self.dirs = dirs
        self.v2 = v2

    def where(self, name: str) -> str:
        return f"{self.dirs.get(UNIFIED if self.v2 else V1_FILES[name])}/{name}"

    def integer(self, name: str) -> int | None:
        """A one-number file (``max`` is no number and no error either)."""
        data = self.files.get(name)
        if data is None:
            return None
        try:
            return int(data)
        except ValueError:
            text = data.strip()
            if text != b"max":
                self.errors.append(f"{self.where(name)}: not a number: {text[:40]!r}")
            return None


def keyed(data: bytes | None) -> dict[bytes, bytes]:
    """A ``key value`` per line file (cpu.stat) as a dict, split once."""
    if data is None:
        return {}
    tokens = data.split()
    return dict(zip(tokens[::2], tokens[1::2], strict=False))


def num(values: dict[bytes, bytes], key: bytes, scale: int = 1) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    try:
        return int(value) * scale
    except ValueError:
        return None


def field_of(data: bytes, key: bytes) -> int | None:
    """One ``key value`` line's value, found without splitting the whole file (memory.stat
    has dozens of lines and only one is needed)."""
    needle = key + b" "
    if data.startswith(needle):
        start = len(needle)
    else:
        at = data.find(b"\n" + needle)
        if at < 0:
            return None
        start = at + 1 + len(needle)
    end = data.find(b"\n", start)
    try:
        return int(data[start:] if end < 0 else data[start:end])
    except ValueError:
        return None


def sum_per_cpu(data: bytes) -> tuple[int, int] | None:
    """Column sums of ``cpu user system`` rows; None if the table is not that."""
    tokens = data.split()
    if tokens[:3] != [b"cpu", b"user", b"system"] or len(tokens) % 3:
        return None
    try:
        return sum(map(int, tokens[4::3])), sum(map(int, tokens[5::3]))
    except ValueError:
        return None
