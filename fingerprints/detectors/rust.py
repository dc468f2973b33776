"""Rust executables: compiled, no runtime, but the compiler version is worth knowing.

rustc records itself in ``.comment`` (``rustc version 1.95.0 (59807616e 2026-04-14)``);
distribution builds strip that but keep panic locations under
``/usr/src/rustc-1.63.0/library/…``; upstream builds keep ``/rustc/<commit>/library/``
(Rust, version unknown). Kind ``Rust``, version ``1.95.0``.
The string scan is the expensive part and every process of every container meets this
detector, so it only runs on binaries that could be Rust: not linked to libstdc++ (C++
runtimes such as node or the JVM launcher's libraries) and with constant strings of
bounded size.
"""

from __future__ import annotations

import re

from fingerprints.base import Detection, FingerprintError, ProcessView
from fingerprints.reading.binscan import iter_matches
from fingerprints.reading.elf import ElfFile
from fingerprints.reading.evidence import exe_name
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "Rust"

_COMMENT = re.compile(rb"rustc version (\d+\.\d+\.\d+)")
_PANIC_PATH = re.compile(
    rb"/rustc-(\d+\.\d+\.\d+)/library/(?:core|std|alloc)/|/rustc/[0-9a-f]{40}/library/"
)
RODATA_CAP = 16 << 20
_INTERPRETERS = re.compile(r"^(?:python|pypy|perl|ruby|php|node|java|beam|dotnet|mono)")
"""C/C++ runtimes the other detectors own: scanning them for rustc strings is wasted."""


def _scan(elf: ElfFile, name: str, pattern: re.Pattern[bytes], cap: int) -> re.Match[bytes] | None:
    section = elf.section(name)
    if section is None:
        return None
    return next(iter_matches(elf.read, pattern, section.offset, min(section.size, cap)), None)


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Rust`` when the executable was built by rustc."""
    if _INTERPRETERS.match(exe_name(view)):
        return None
    try:
        elf = ElfFile(view.read_exe, max_read=RODATA_CAP + (4 << 20))
        comment = _scan(elf, ".comment", _COMMENT, 64 << 10)
        if comment is not None:
            return Detection(kind=KIND, kind_version=comment.group(1).decode())
        if any("libstdc++" in lib for lib in elf.dynamic().needed):
            return None
        panic = _scan(elf, ".rodata", _PANIC_PATH, RODATA_CAP)
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError):
        return None
    if panic is None:
        return None
    version = panic.group(1)
    return Detection(kind=KIND, kind_version=version.decode() if version else None)
