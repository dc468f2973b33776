"""Reading small kernel files (/proc, cgroupfs) with as few syscalls as possible.

A node pass reads thousands of tiny pseudo-files; Python's ``open()`` costs more than the
kernel's work, so reads go through ``os.open``/``os.pread``. Files read on every pass
(cgroup counters) can be kept open and re-read with ``pread(fd, n, 0)``: the kernel
regenerates a seq_file at offset 0, so that is one syscall instead of three.
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
    fails like any missing file).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._fds: dict[str, int] = {}
        self._used: set[str] = set()

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
                del self._fds[path]
                os.close(fd)
                if e.errno not in GONE:
                    raise
        if len(self._fds) >= self.capacity:
            return read_small(path, limit)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = _read_fd(fd, limit)
        except BaseException:
            os.close(fd)
            raise
        self._fds[path] = fd
        self._used.add(path)
        return data

    def end_pass(self) -> None:
        """Close every descriptor that was not read since the previous ``end_pass``."""
        for path in [p for p in self._fds if p not in self._used]:
            os.close(self._fds.pop(path))
        self._used.clear()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._used.clear()
