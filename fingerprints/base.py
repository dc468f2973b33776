"""The contract between the fingerprint engine and the detectors.

Detectors are pure functions over a ``ProcessView``: they read files only through the
confined ``ContainerRoot`` (never the host's path resolution) and never execute anything.
Each returns a ``Detection`` or ``None``; the engine merges them into one Fingerprint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


class FingerprintError(Exception):
    """Base of every error a detector or the confined root may raise."""


class RootError(FingerprintError):
    """A path inside a container root could not be read safely (missing, not a regular
    file, escaped, too many symlinks, over a byte or time budget)."""


Reader = Callable[[int, int], bytes]
"""read(offset, max_bytes) -> bytes; fewer bytes than asked means end of file."""


def no_mapped_files(path: str) -> Reader | None:
    """The ``read_mapped`` of a view that has no /proc/<pid>/map_files to offer."""
    return None


class ContainerRoot(ABC):
    """Read-only view of one container's filesystem, with paths resolved inside it.

    Paths are container paths (``/etc/os-release``); absolute symlinks re-anchor at the
    container root, ``..`` never climbs above it, only regular files are read.
    """

    @abstractmethod
    def read_bytes(self, path: str, max_bytes: int = 1 << 20, offset: int = 0) -> bytes:
        """At most ``max_bytes`` of a regular file from ``offset``; RootError otherwise."""

    @abstractmethod
    def read_text(self, path: str, max_bytes: int = 1 << 20) -> str:
        """Like read_bytes, decoded as UTF-8 with replacement."""

    @abstractmethod
    def listdir(self, path: str, limit: int = 4096) -> list[str]:
        """Names in a directory (at most ``limit``); RootError if not a directory."""

    @abstractmethod
    def is_file(self, path: str) -> bool:
        """True for a regular file (after confined symlink resolution)."""

    @abstractmethod
    def is_dir(self, path: str) -> bool:
        """True for a directory (after confined symlink resolution)."""

    @abstractmethod
    def resolve(self, path: str) -> str:
        """The container path that ``path`` names after confined symlink resolution."""

    @abstractmethod
    def size(self, path: str) -> int:
        """Size in bytes of a regular file."""


@dataclass
class ProcessView:
    """One process of the container, as read from the host's /proc."""

    pid: int
    comm: str
    argv: list[str]
    environ: dict[str, str]
    cwd: str
    exe: str
    maps: list[str]
    root: ContainerRoot
    read_exe: Reader = field(repr=False)
    """read_exe(offset, max_bytes): bytes of the running executable via /proc/<pid>/exe."""
    read_mapped: Callable[[str], Reader | None] = field(default=no_mapped_files, repr=False)
    """read_mapped(path): a Reader over the very file mapped at that container path (via
    /proc/<pid>/map_files, so a deleted or replaced library still reads as it was loaded),
    or None when there is none to open."""


@dataclass
class Detection:
    """What one detector found; ``None`` fields mean 'not found', not 'empty'."""

    kind: str | None = None
    kind_version: str | None = None
    kind_implementer: str | None = None
    runtimes: list[tuple[str, str | None]] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


Detector = Callable[[ProcessView], Detection | None]
