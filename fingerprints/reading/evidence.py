"""Small readers of process evidence shared by the language detectors.

Detectors ask the same questions of a ProcessView (which library is mapped, what is the
executable called, what does a ``KEY=value`` file say); answering them in one place keeps
the hostile-input handling (deleted suffixes, quoting, caps) identical everywhere.
"""

from __future__ import annotations

import json
import posixpath
import re

from fingerprints.base import ContainerRoot, Detection, FingerprintError, ProcessView, Reader
from fingerprints.reading.binscan import first_string, root_reader
from fingerprints.reading.rootfs import BudgetExceeded

DELETED = " (deleted)"


def clean_path(path: str) -> str:
    """A maps/exe path without the kernel's `` (deleted)`` suffix."""
    return path[: -len(DELETED)] if path.endswith(DELETED) else path


def mapped(view: ProcessView, pattern: re.Pattern[str]) -> tuple[str, re.Match[str]] | None:
    """The first mapped file whose path matches ``pattern`` (searched), with the match."""
    for entry in view.maps:
        path = clean_path(entry)
        match = pattern.search(path)
        if match:
            return path, match
    return None


def library_reader(view: ProcessView, path: str) -> Reader:
    """A Reader over a mapped library: the mapped inode itself through map_files when it
    can be opened (deleted or replaced on disk, or out of reach of the root's paths),
    else the file at that path in the confined root."""
    return view.read_mapped(path) or root_reader(view.root, path)


def interpreter(
    view: ProcessView,
    kind: str,
    exe: re.Pattern[str],
    library: re.Pattern[str],
    version: re.Pattern[bytes],
    *,
    preceded_by: bytes | None = None,
) -> tuple[Detection, re.Match[bytes] | None] | None:
    """An interpreter known by its executable's name or its mapped shared library, and
    the first match of ``version`` in whichever of the two holds the interpreter: None
    when the process is not one. A binary that cannot be read costs only the version,
    named under ``<kind>Error``."""
    lib = mapped(view, library)
    if not exe.match(exe_name(view)) and lib is None:
        return None
    found = Detection(kind=kind)
    read = library_reader(view, lib[0]) if lib else view.read_exe
    try:
        return found, first_string(read, version, preceded_by=preceded_by)
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError) as exc:
        name = kind.lower()
        found.extra[f"{name}Error"] = f"{name} binary: {exc}"
        return found, None


def exe_name(view: ProcessView) -> str:
    """Basename of the running executable (falls back to argv[0], then comm)."""
    for candidate in (view.exe, view.argv[0] if view.argv else ""):
        name = posixpath.basename(clean_path(candidate))
        if name:
            return name
    return view.comm


def absolute(view: ProcessView, path: str) -> str:
    """A process-relative path (argv, classpath) made absolute against its cwd."""
    if path.startswith("/"):
        return posixpath.normpath(path)
    return posixpath.normpath(posixpath.join(view.cwd or "/", path))


def parse_properties(text: str) -> dict[str, str]:
    """``KEY=value`` / ``KEY="value"`` lines (java release, os-release style), no expansion."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def read_text(root: ContainerRoot, path: str, max_bytes: int = 64 << 10) -> str | None:
    """A small text file from the container, or None when it cannot be read."""
    try:
        return root.read_text(path, max_bytes=max_bytes)
    except BudgetExceeded:
        raise
    except FingerprintError:
        return None


def listdir(root: ContainerRoot, path: str, limit: int = 4096) -> list[str]:
    """Directory names, or [] when the directory cannot be read."""
    try:
        return root.listdir(path, limit=limit)
    except BudgetExceeded:
        raise
    except FingerprintError:
        return []


def parse_json(text: str) -> object | None:
    """A JSON document from the container, None when it is not one. Nesting deeper than
    the interpreter's recursion limit (a ``package.json`` of a million ``[``) is not a
    document either: the decoder stops at that depth, so the cost stays linear."""
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data
