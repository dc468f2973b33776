"""Reading small kernel files (/proc, cgroupfs) with as few syscalls as possible.

A node pass reads thousands of tiny pseudo-files; Python's ``open()`` costs more than the
kernel's work, so reads go through ``os.open``/``os.pread``. Files read on every pass
(cgroup counters) can be kept open and re-read with ``pread(fd, n, 0)``: the kernel
regenerates a seq_file at offset 0, so that is one syscall instead of three. Files
always read together (one cgroup's counters) can be read as a group: one Python-level
step for all of them, which is most of what a kept file costs.
"""

from __future__ import annotations

import errno
import os

CHUNK = 65536
GONE = frozenset({errno.ENOENT, errno.ESRCH, errno.ENODEV})


def read_small(path: str, limit: int = 1 << 20) -> bytes:
    """The whole of a small file (at most ``limit`` bytes); raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_fd(fd, limit)
    finally:
        os.close(fd)


def read_fd(fd: int, limit: int = 1 << 20) -> bytes:
    """The whole of an open small file, read from offset 0; raises OSError."""
    return _read_fd(fd, limit)


def _read_fd(fd: int, limit: int) -> bytes:
    """Read from offset 0 until EOF; pseudo-files may hand out less than asked."""
    data = os.pread(fd, CHUNK, 0)
    if len(data) < CHUNK:
        return data
    parts = [data]
    total = len(data)
    while total < limit:
        more = os.pread(fd, CHUNK, total)
        if not more:
            break
        parts.append(more)
        total += len(more)
    return b"".join(parts)[:limit]


class KeptFiles:
    """Small files kept open across passes, up to ``capacity`` descriptors.

    Paths not read during a pass are closed by ``end_pass``, so vanished cgroups do not
    leak descriptors; a kept file whose cgroup was removed is reopened once (and then
    fails like any missing file). Files read together can form a group
    (``read_group``): read in one step, kept or closed as one.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.wanted = 0
        """Descriptors the last finished pass would have kept, had they all fit."""
        self._spilled = 0
        """Files this pass read by path because ``capacity`` was reached."""
        self._fds: dict[str, int] = {}
        self._used: set[str] = set()
        self._loose: set[str] = set()
        """Kept paths in no group: those ``end_pass`` checks one by one."""
        self._groups: dict[tuple[str, ...], list[int]] = {}
        self._member: dict[str, tuple[str, ...]] = {}
        self._read_groups: set[tuple[str, ...]] = set()

    def __len__(self) -> int:
        return len(self._fds)

    def read(self, path: str, limit: int = 1 << 20) -> bytes:
        """The whole file, like ``read_small``; raises OSError."""
        fd = self._fds.get(path)
        if fd is not None:
            self._used.add(path)
            try:
                data = os.pread(fd, CHUNK, 0)  # the common case, without a call
                return data if len(data) < CHUNK else _read_fd(fd, limit)
            except OSError as e:
                self._close(path)
                if e.errno not in GONE:
                    raise
        if len(self._fds) >= self.capacity:
            self._spilled += 1
            return read_small(path, limit)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = _read_fd(fd, limit)
        except BaseException:
            os.close(fd)
            raise
        self._fds[path] = fd
        self._loose.add(path)
        self._used.add(path)
        return data

    def read_group(self, paths: tuple[str, ...]) -> list[bytes] | None:
        """Every file of ``paths`` (all kept open by earlier ``read`` calls), in order;
        None when one is not kept, fails or is too big for one ``pread``: then read them
        one by one with ``read``, which also says which failed and why."""
        fds = self._groups.get(paths) or self._group(paths)
        if fds is None:
            return None
        pread = os.pread
        try:
            data = [pread(fd, CHUNK, 0) for fd in fds]
        except OSError:
            return None
        if CHUNK in map(len, data):
            return None
        self._read_groups.add(paths)
        return data

    def read_beyond(self, paths: tuple[str, ...]) -> list[bytes] | None:
        """Every file of ``paths`` read by path, in order, when the pool is too full to
        keep them (``read`` would read them by path too, one call each, and say nothing
        new); None when there is room for them (read them with ``read``, which keeps
        them) or one fails."""
        if len(self._fds) + len(paths) <= self.capacity:
            return None
        try:
            data = [read_small(path) for path in paths]
        except OSError:
            return None
        self._spilled += len(paths)
        return data

    def keep_group(self, paths: tuple[str, ...]) -> None:
        """Keep a group open through this pass without reading it (files read every few
        passes only); one that is not kept still counts as ``wanted``."""
        if paths in self._groups or self._group(paths) is not None:
            self._read_groups.add(paths)
        else:
            self._spilled += len(paths)

    def _group(self, paths: tuple[str, ...]) -> list[int] | None:
        """The descriptors of ``paths`` as a new group, if every one is kept."""
        kept = self._fds
        if not paths or not all(p in kept for p in paths):
            return None
        for p in paths:
            self._ungroup(self._member.get(p))
        fds = [kept[p] for p in paths]
        self._groups[paths] = fds
        for p in paths:
            self._member[p] = paths
        self._loose.difference_update(paths)
        return fds

    def _ungroup(self, key: tuple[str, ...] | None) -> None:
        """Forget a group; its descriptors stay kept as loose files."""
        if key is None or self._groups.pop(key, None) is None:
            return
        for p in key:
            del self._member[p]
        self._loose.update(key)

    def _close(self, path: str) -> None:
        self._ungroup(self._member.get(path))
        self._loose.discard(path)
        os.close(self._fds.pop(path))

    def end_pass(self) -> None:
        """Close every descriptor that was not read since the previous ``end_pass``, alone
        or in its group."""
        if len(self._read_groups) < len(self._groups):
            for key in [k for k in self._groups if k not in self._read_groups]:
                self._ungroup(key)
        for path in self._loose - self._used:
            self._close(path)
        self._used.clear()
        self._read_groups.clear()
        self.wanted, self._spilled = len(self._fds) + self._spilled, 0

    def trim(self) -> None:
        """Close descriptors until no more than ``capacity`` are held (their files are
        read by path until there is room again)."""
        for path in list(self._fds)[: max(len(self._fds) - self.capacity, 0)]:
            self._close(path)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._used.clear()
        self._loose.clear()
        self._groups.clear()
        self._member.clear()
        self._read_groups.clear()
