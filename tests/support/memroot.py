"""A container root held in memory, for parser tests that feed detectors file contents.

Only what the detectors ask of a ``ContainerRoot``: files by path (directories implied
by the paths below them), no symlinks. Confinement itself is tested on real filesystems
(tests/fingerprints/test_rootfs.py); this is for what the parsers do with the bytes.
"""

from __future__ import annotations

import posixpath

from fingerprints.base import ContainerRoot, ProcessView, Reader, RootError
from fingerprints.reading.elf import bytes_reader


def _norm(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/"))


class MemoryRoot(ContainerRoot):
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = {_norm(p): data for p, data in files.items()}
        self.dirs = {"/"}
        for path in self.files:
            while path != "/":
                path = posixpath.dirname(path)
                self.dirs.add(path)

    def _file(self, path: str) -> bytes:
        data = self.files.get(_norm(path))
        if data is None:
            raise RootError(f"{path}: No such file or directory")
        return data

    def read_bytes(self, path: str, max_bytes: int = 1 << 20, offset: int = 0) -> bytes:
        return self._file(path)[offset : offset + max_bytes]

    def read_text(self, path: str, max_bytes: int = 1 << 20) -> str:
        return self.read_bytes(path, max_bytes).decode("utf-8", errors="replace")

    def listdir(self, path: str, limit: int = 4096) -> list[str]:
        path = _norm(path)
        if path not in self.dirs:
            raise RootError(f"{path}: not a directory")
        names = {
            p[len(path) :].lstrip("/").split("/")[0]
            for p in (*self.files, *self.dirs)
            if p != path and p.startswith(path.rstrip("/") + "/")
        }
        return sorted(names)[:limit]

    def is_file(self, path: str) -> bool:
        return _norm(path) in self.files

    def is_dir(self, path: str) -> bool:
        return _norm(path) in self.dirs

    def resolve(self, path: str) -> str:
        return _norm(path)

    def size(self, path: str) -> int:
        return len(self._file(path))


def memory_view(
    files: dict[str, bytes],
    argv: list[str],
    exe: str,
    cwd: str = "/",
    maps: list[str] | None = None,
    exe_bytes: bytes = b"",
    mapped: dict[str, bytes] | None = None,
) -> ProcessView:
    """A ProcessView over a MemoryRoot; ``mapped`` are the files behind ``maps``."""
    libraries = mapped or {}

    def read_mapped(path: str) -> Reader | None:
        data = libraries.get(path)
        return None if data is None else bytes_reader(data)

    return ProcessView(
        pid=1,
        comm=posixpath.basename(exe)[:15],
        argv=argv,
        environ={},
        cwd=cwd,
        exe=exe,
        maps=list(maps or libraries),
        root=MemoryRoot(files),
        read_exe=bytes_reader(exe_bytes),
        read_mapped=read_mapped,
    )
