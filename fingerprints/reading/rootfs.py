"""A container's filesystem read from the host without trusting anything in it.

The kernel's own path resolution under ``/proc/<pid>/root`` follows absolute symlinks on
the *host*, so every path is walked here one component at a time from a root directory
fd (``O_PATH|O_NOFOLLOW``): symlinks are read and re-anchored at the container root,
``..`` is clamped there, hops are capped, only regular files are opened (checked with
fstat before and after opening), and every container gets a byte and time budget.

Nothing is read from, listed in or resolved through a kernel pseudo-filesystem (procfs,
sysfs, debugfs, cgroupfs, …) wherever the container mounted it: the filesystem type of
every descriptor the walk opens is the kernel's answer (``hostfs.pseudo_filesystem``),
asked once per device met in a walk, since one device is one superblock.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from fingerprints.base import ContainerRoot, RootError
from hostfs import pseudo_filesystem

MAX_SYMLINK_HOPS = 40
"""Linux's own limit (MAXSYMLINKS); a deeper chain is a loop or an attack."""

MAX_COMPONENTS = 4096
"""Components walked per lookup, symlink expansions included (PATH_MAX / 1)."""

MAX_DENIED = 8
"""Refused paths remembered per root (enough to name the cause, bounded for hostile roots)."""
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class BudgetExceeded(RootError):
    """The container's time or byte budget is spent: stop, do not try fallbacks."""


class Budget:
    """What one container may cost: wall time from creation and bytes read in total.

    A crafted filesystem must not make the agent's CPU, memory or latency depend on it,
    so every read is charged here and the first overrun fails the whole container.
    """

    def __init__(self, max_seconds: float = 5.0, max_bytes_total: int = 64 << 20) -> None:
        self.max_seconds = max_seconds
        self.max_bytes_total = max_bytes_total
        self.bytes_read = 0
        self._deadline = time.monotonic() + max_seconds

    def check(self) -> None:
        """RootError once the time budget is spent."""
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(f"time budget of {self.max_seconds:g}s exceeded")

    def charge(self, n: int) -> None:
        """Account ``n`` bytes; RootError when the byte budget would be exceeded."""
        if self.bytes_read + n > self.max_bytes_total:
            raise BudgetExceeded(f"byte budget of {self.max_bytes_total} bytes exceeded")
        self.bytes_read += n
        self.check()


def _split(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


class _Resolved:
    """An O_PATH fd of the final component plus its parent, closed together."""

    def __init__(self, parent_fd: int, name: str, fd: int, path: str, st: os.stat_result):
        self.parent_fd = parent_fd
        self.name = name
        self.fd = fd
        self.path = path
        self.st = st

    def close(self) -> None:
        os.close(self.fd)
        if self.parent_fd != self.fd:
            os.close(self.parent_fd)


class ConfinedRoot(ContainerRoot):
    """``ContainerRoot`` over a directory (``/proc/<pid>/root`` or any test tree).

    The root directory is opened afresh for each call, so a container that exits turns
    into a clean RootError and no fd outlives a call.
    """

    def __init__(self, root_dir: str, budget: Budget | None = None) -> None:
        self.root_dir = root_dir
        # without a budget (tools, tests) only a generous time cap applies
        self.budget = budget if budget is not None else Budget(max_seconds=60.0)
        self.denied: list[str] = []
        """Paths the kernel refused (EACCES/EPERM): detectors treat an unreadable file as
        absent, so the engine reports these, naming what the extractor lacks."""

    def _error(self, path: str, e: OSError) -> RootError:
        """The RootError for ``e`` on ``path``, remembering a permission refusal."""
        refused = e.errno in (errno.EACCES, errno.EPERM)
        if refused and path not in self.denied and len(self.denied) < MAX_DENIED:
            self.denied.append(path)
        return RootError(f"{path}: {e.strerror}")

    def _open_root(self) -> int:
        try:
            return os.open(self.root_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise RootError(f"container root {self.root_dir}: {e.strerror}") from e

    @staticmethod
    def _refuse_pseudo(fd: int, st: os.stat_result, checked: set[int], path: str) -> None:
        """RootError when ``fd`` is on a kernel pseudo-filesystem; ``checked`` holds the
        devices of this walk already found to be real filesystems."""
        if st.st_dev in checked:
            return
        kind = pseudo_filesystem(fd)
        if kind is not None:
            raise RootError(f"{path}: on a kernel pseudo-filesystem ({kind}), not read")
        checked.add(st.st_dev)

    def _walk(self, path: str) -> _Resolved:
        """Resolve ``path`` inside the root, following symlinks confined to it."""
        self.budget.check()
        root_fd = self._open_root()
        stack: list[tuple[int, str]] = [(root_fd, "")]
        pending = _split(path)
        pending.reverse()
        hops = 0
        steps = 0
        checked: set[int] = set()
        try:
            root_st = os.fstat(root_fd)
            self._refuse_pseudo(root_fd, root_st, checked, path)
            while pending:
                steps += 1
                if steps > MAX_COMPONENTS:
                    raise RootError(f"{path}: too many path components")
                if steps % 64 == 0:
                    self.budget.check()
                name = pending.pop()
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[0])
                    continue
                dir_fd = stack[-1][0]
                try:
                    fd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
                except OSError as e:
                    raise self._error(path, e) from e
                st = os.fstat(fd)
                try:
                    self._refuse_pseudo(fd, st, checked, path)
                except RootError:
                    os.close(fd)
                    raise
                if stat.S_ISLNK(st.st_mode):
                    os.close(fd)
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise RootError(f"{path}: too many levels of symbolic links")
                    try:
                        target = os.readlink(name, dir_fd=dir_fd)
                    except OSError as e:
                        raise self._error(path, e) from e
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop()[0])
                    parts = _split(target)
                    parts.reverse()
                    pending.extend(parts)
                    continue
                if pending and not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise RootError(f"{path}: not a directory")
                stack.append((fd, name))
            if len(stack) == 1:
                return _Resolved(root_fd, "", root_fd, "/", root_st)
            resolved = "/" + "/".join(n for _, n in stack[1:])
            fd, name = stack.pop()
            parent_fd = stack.pop()[0]
            result = _Resolved(parent_fd, name, fd, resolved, os.fstat(fd))
        except BaseException:
            for fd_, _ in stack:
                os.close(fd_)
            raise
        for fd_, _ in stack:
            os.close(fd_)
        return result

    def _open_regular(self, path: str) -> tuple[int, os.stat_result]:
        """An fd opened for reading on a regular file, identity checked against the walk."""
        res = self._walk(path)
        try:
            if not stat.S_ISREG(res.st.st_mode):
                raise RootError(f"{path}: not a regular file")
            try:
                fd = os.open(res.name, _READ_FLAGS, dir_fd=res.parent_fd)
            except OSError as e:
                raise self._error(path, e) from e
        finally:
            res.close()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != res.st.st_ino or st.st_dev != res.st.st_dev:
            os.close(fd)
            raise RootError(f"{path}: changed while being opened")
        return fd, st

    def read_bytes(self, path: str, max_bytes: int = 1 << 20, offset: int = 0) -> bytes:
        fd, _ = self._open_regular(path)
        try:
            return read_capped(fd, offset, max_bytes, self.budget, path)
        finally:
            os.close(fd)

    def read_text(self, path: str, max_bytes: int = 1 << 20) -> str:
        return self.read_bytes(path, max_bytes).decode("utf-8", errors="replace")

    def listdir(self, path: str, limit: int = 4096) -> list[str]:
        res = self._walk(path)
        try:
            if not stat.S_ISDIR(res.st.st_mode):
                raise RootError(f"{path}: not a directory")
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            try:
                fd = os.open(".", flags, dir_fd=res.fd)
            except OSError as e:
                raise self._error(path, e) from e
        finally:
            res.close()
        names: list[str] = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if len(names) >= limit:
                        break
                    names.append(entry.name)
        except OSError as e:
            raise self._error(path, e) from e
        finally:
            os.close(fd)
        self.budget.check()
        return sorted(names)

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            res = self._walk(path)
        except BudgetExceeded:
            raise
        except RootError:
            return None
        res.close()
        return res.st

    def is_file(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def resolve(self, path: str) -> str:
        res = self._walk(path)
        res.close()
        return res.path

    def size(self, path: str) -> int:
        res = self._walk(path)
        res.close()
        if not stat.S_ISREG(res.st.st_mode):
            raise RootError(f"{path}: not a regular file")
        return res.st.st_size


def read_capped(fd: int, offset: int, max_bytes: int, budget: Budget, what: str) -> bytes:
    """``pread`` up to ``max_bytes`` in chunks, each charged to the budget."""
    if offset < 0 or max_bytes < 0:
        raise RootError(f"{what}: negative offset or size")
    parts: list[bytes] = []
    got = 0
    while got < max_bytes:
        budget.check()
        try:
            chunk = os.pread(fd, min(_CHUNK, max_bytes - got), offset + got)
        except OSError as e:
            raise RootError(f"{what}: {e.strerror}") from e
        budget.charge(len(chunk))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
