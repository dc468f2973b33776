"""Bounded regex scans over large files read piecewise (executables, shared libraries).

Runtime binaries are 20–120 MB and every container has a byte budget, so scans look only
where constant strings live (``.rodata``, else the read-only segments), go in chunks with
an overlap longer than any pattern used, stop at the first hit when that is enough, and
never read past a cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fingerprints.base import ContainerRoot, Reader
from fingerprints.reading.elf import PF_W, PF_X, ElfError, ElfFile

CHUNK = 1 << 20
OVERLAP = 512
SCAN_CAP = 48 << 20
"""Most bytes one scan reads: above node's string table offset, below a container budget."""


def root_reader(root: ContainerRoot, path: str) -> Reader:
    """A Reader over one container file, confined like every other root access."""

    def read(offset: int, n: int) -> bytes:
        return root.read_bytes(path, max_bytes=n, offset=offset)

    return read


def string_ranges(read: Reader) -> list[tuple[int, int]]:
    """(offset, length) of the file parts holding constant strings, best first.

    ``.rodata`` when the section table is there, else every read-only PT_LOAD; for
    something that is not ELF, the whole file from the start.
    """
    try:
        elf = ElfFile(read, max_read=4 << 20)
    except ElfError:
        return [(0, SCAN_CAP)]
    ranges = [(s.offset, s.size) for s in elf.sections if s.name in (".rodata", ".comment")]
    if not ranges:
        ranges = [
            (seg.offset, seg.filesz)
            for seg in elf.loads()
            if not seg.flags & (PF_W | PF_X) and seg.filesz
        ]
    return ranges or [(0, SCAN_CAP)]


def iter_matches(
    read: Reader,
    pattern: re.Pattern[bytes],
    start: int = 0,
    length: int = SCAN_CAP,
    preceded_by: bytes | None = None,
) -> Iterator[re.Match[bytes]]:
    """Matches of ``pattern`` in ``[start, start+length)`` (capped), each reported once.

    Matches must be shorter than OVERLAP; a match is reported in the chunk where it
    starts before the overlap tail, so the next chunk does not report it again.
    ``preceded_by``: keep only matches whose previous byte is one of these. Patterns
    should start with a literal (Python's re then skips ahead ~20x faster than with a
    leading class or alternation), which is what this filter is for.
    """
    end = start + min(length, SCAN_CAP)
    allowed = _byte_set(preceded_by) if preceded_by is not None else None
    offset = start
    while offset < end:
        back = 1 if offset > start else 0
        want = min(CHUNK + OVERLAP, end - offset)
        data = read(offset - back, want + back)
        if len(data) <= back:
            return
        last = offset + want >= end or len(data) < want + back
        for match in pattern.finditer(data, back):
            if not last and match.start() - back >= CHUNK:
                break
            if allowed is not None:
                at = match.start()
                if at == 0 or data[at - 1 : at] not in allowed:
                    continue
            yield match
        if last:
            return
        offset += CHUNK


def _byte_set(allowed: bytes) -> frozenset[bytes]:
    return frozenset(allowed[i : i + 1] for i in range(len(allowed)))


def scan_strings(
    read: Reader,
    pattern: re.Pattern[bytes],
    max_hits: int = 1,
    preceded_by: bytes | None = None,
) -> list[re.Match[bytes]]:
    """Up to ``max_hits`` matches in the string-holding parts of a binary, in file order."""
    hits: list[re.Match[bytes]] = []
    budget = SCAN_CAP
    for offset, length in string_ranges(read):
        if budget <= 0:
            break
        for match in iter_matches(read, pattern, offset, min(length, budget), preceded_by):
            hits.append(match)
            if len(hits) >= max_hits:
                return hits
        budget -= length
    return hits


def first_string(
    read: Reader, pattern: re.Pattern[bytes], preceded_by: bytes | None = None
) -> re.Match[bytes] | None:
    """The first match of ``pattern`` among a binary's constant strings, or None."""
    hits = scan_strings(read, pattern, preceded_by=preceded_by)
    return hits[0] if hits else None
