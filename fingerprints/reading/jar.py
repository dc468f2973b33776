"""Bounded reading of jar (zip) files inside a container root.

Framework versions live in jar manifests. A container's jar is hostile input: it can be
huge, truncated, or a zip bomb. ``zipfile`` runs over a seekable view that reads through
the confined root and stops at a byte budget; members are decompressed only up to a cap.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from fingerprints.base import ContainerRoot, FingerprintError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

READ_BUDGET = 8 << 20
MEMBER_CAP = 256 << 10


class JarError(FingerprintError):
    """A jar could not be read within its limits (not a zip, too big, corrupt)."""


class _RootFile(io.RawIOBase):
    """Seekable read-only view of one container file, with a total byte budget."""

    def __init__(self, root: ContainerRoot, path: str, budget: int) -> None:
        self._root = root
        self._path = path
        self._size = root.size(path)
        self._pos = 0
        self._budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        if want == 0:
            return 0
        if want > self._budget:
            raise JarError(f"{self._path}: read budget exhausted")
        data = self._root.read_bytes(self._path, max_bytes=want, offset=self._pos)
        self._budget -= len(data)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class Jar:
    """An open jar: member names and capped member contents."""

    def __init__(self, root: ContainerRoot, path: str, budget: int = READ_BUDGET) -> None:
        self.path = path
        try:
            raw = _RootFile(root, path, budget)
            self._zip = zipfile.ZipFile(io.BufferedReader(raw, buffer_size=64 << 10))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise JarError(f"{path}: not a readable jar: {exc}") from exc

    def names(self) -> list[str]:
        """Member names, as listed in the central directory."""
        return self._zip.namelist()

    def has(self, name: str) -> bool:
        """True when the jar has a member with exactly this name."""
        try:
            self._zip.getinfo(name)
        except KeyError:
            return False
        return True

    def read(self, name: str, cap: int = MEMBER_CAP) -> bytes:
        """At most ``cap`` decompressed bytes of one member (a bomb stops at the cap)."""
        try:
            with self._zip.open(name) as member:
                return member.read(cap)
        except KeyError as exc:
            raise JarError(f"{self.path}: no member {name}") from exc
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise JarError(f"{self.path}: cannot read {name}: {exc}") from exc

    def manifest(self) -> dict[str, str]:
        """Main attributes of META-INF/MANIFEST.MF ({} when the jar has none)."""
        if not self.has("META-INF/MANIFEST.MF"):
            return {}
        return parse_manifest(self.read("META-INF/MANIFEST.MF").decode("utf-8", "replace"))


def parse_manifest(text: str) -> dict[str, str]:
    """Main section of a manifest: 72-byte lines, continuations start with one space.

    Continuations are collected and joined once, so a value continued over thousands of
    lines costs what its length costs (appending to a string each time would not)."""
    attributes: dict[str, list[str]] = {}
    key: str | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            break
        if line.startswith(" ") and key is not None:
            attributes[key].append(line[1:])
            continue
        name, sep, value = line.partition(":")
        if not sep:
            key = None
            continue
        key = name.strip()
        attributes[key] = [value[1:] if value.startswith(" ") else value]
    return {name: "".join(parts).strip() for name, parts in attributes.items()}


def read_manifest(root: ContainerRoot, path: str) -> dict[str, str]:
    """Manifest main attributes of the jar at ``path``; JarError/RootError when unreadable."""
    return Jar(root, path).manifest()
