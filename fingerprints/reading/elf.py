"""A small, lazy ELF reader for fingerprinting binaries from the outside.

Works through a ``read(offset, n) -> bytes`` callable so the same code reads
``/proc/<pid>/exe`` and files of a confined container root without loading 100 MB
binaries: only headers and the parts asked for are read, and the total is capped.
Every malformed input becomes ``ElfError``; errors of the callable itself (RootError,
OSError) pass through unchanged because they are not about the file's format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from fingerprints.base import FingerprintError, Reader

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PF_X = 1
PF_W = 2
PF_R = 4
SHT_NOBITS = 8

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_RELA = 7
DT_RELASZ = 8
DT_STRSZ = 10
DT_SONAME = 14

MAX_PHNUM = 1024
MAX_SHNUM = 4096
MAX_DYNAMIC = 4096
MAX_STRTAB = 4 << 20
MAX_NAME = 4096
MAX_ENTSIZE = 256
MAX_RELA = 32 << 20
MAX_SYMTAB = 16 << 20
DEFAULT_MAX_READ = 64 << 20


class ElfError(FingerprintError):
    """The bytes are not a well-formed ELF file (or ask for more than the read cap)."""


@dataclass(frozen=True)
class Segment:
    """One program header."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class Section:
    """One section header, with its name resolved."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True)
class Dynamic:
    """What the dynamic section says about linking."""

    needed: list[str]
    soname: str | None


@dataclass(frozen=True)
class Symbol:
    """A symbol's address and size (from ``.symtab`` or ``.dynsym``)."""

    name: str
    value: int
    size: int


def bytes_reader(data: bytes) -> Reader:
    """A ``Reader`` over bytes already in memory (tests, small files)."""

    def read(offset: int, n: int) -> bytes:
        if offset < 0 or n < 0:
            return b""
        return data[offset : offset + n]

    return read


class ElfFile:
    """Header, program headers and (when sane) section headers of one ELF file."""

    def __init__(self, read: Reader, max_read: int = DEFAULT_MAX_READ) -> None:
        self._raw_read = read
        self.max_read = max_read
        self.bytes_read = 0
        ident = self.read(0, 16)
        if ident[:4] != b"\x7fELF":
            raise ElfError("not an ELF file (bad magic)")
        if ident[4] not in (1, 2):
            raise ElfError(f"bad ELF class {ident[4]}")
        if ident[5] not in (1, 2):
            raise ElfError(f"bad ELF data encoding {ident[5]}")
        self.is64 = ident[4] == 2
        self.endian = "<" if ident[5] == 1 else ">"
        if self.is64:
            fields = self._unpack("HHIQQQIHHHHHH", 16)
        else:
            fields = self._unpack("HHIIIIIHHHHHH", 16)
        (self.type, self.machine, _, self.entry, phoff, shoff, _, _) = fields[:8]
        phentsize, phnum, shentsize, shnum, shstrndx = fields[8:]
        self.ptr_size = 8 if self.is64 else 4
        self.segments = self._read_segments(phoff, phentsize, phnum)
        self.sections = self._read_sections(shoff, shentsize, shnum, shstrndx)

    @property
    def big_endian(self) -> bool:
        return self.endian == ">"

    def read(self, offset: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``offset``, counted against the read cap."""
        if offset < 0 or n < 0:
            raise ElfError(f"bad file range {offset}+{n}")
        if self.bytes_read + n > self.max_read:
            raise ElfError(f"read cap of {self.max_read} bytes exceeded")
        data = self._raw_read(offset, n)
        self.bytes_read += len(data)
        if len(data) != n:
            raise ElfError(f"truncated: wanted {n} bytes at {offset:#x}, got {len(data)}")
        return data

    def _unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        st = struct.Struct(self.endian + fmt)
        return st.unpack(self.read(offset, st.size))

    def _read_segments(self, phoff: int, phentsize: int, phnum: int) -> list[Segment]:
        if phnum == 0:
            return []
        fmt = "IIQQQQQQ" if self.is64 else "IIIIIIII"
        size = struct.calcsize(fmt)
        if phnum > MAX_PHNUM or not size <= phentsize <= MAX_ENTSIZE:
            raise ElfError(f"implausible program header table ({phnum} x {phentsize})")
        table = self.read(phoff, phnum * phentsize)
        out = []
        for i in range(phnum):
            f = struct.unpack_from(self.endian + fmt, table, i * phentsize)
            if self.is64:
                ptype, flags, off, vaddr, _, filesz, memsz, _ = f
            else:
                ptype, off, vaddr, _, filesz, memsz, flags, _ = f
            out.append(Segment(ptype, flags, off, vaddr, filesz, memsz))
        return out

    def _read_sections(
        self, shoff: int, shentsize: int, shnum: int, shstrndx: int
    ) -> list[Section]:
        """Section headers are optional: a table that does not fit is ignored, not fatal."""
        fmt = "IIQQQQIIQQ" if self.is64 else "IIIIIIIIII"
        size = struct.calcsize(fmt)
        if shoff == 0 or not size <= shentsize <= MAX_ENTSIZE:
            return []
        try:
            first = struct.unpack(self.endian + fmt, self.read(shoff, size))
            if shnum == 0:
                shnum = first[5]
            if shstrndx == 0xFFFF:
                shstrndx = first[6]
            if not 0 < shnum <= MAX_SHNUM or shstrndx >= shnum:
                return []
            table = self.read(shoff, shnum * shentsize)
        except ElfError:
            return []
        raw = [struct.unpack_from(self.endian + fmt, table, i * shentsize) for i in range(shnum)]
        str_off, str_size = raw[shstrndx][4], raw[shstrndx][5]
        try:
            names = self.read(str_off, min(str_size, MAX_STRTAB)) if shstrndx else b""
        except ElfError:
            names = b""
        return [Section(_cstr(names, r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[9]) for r in raw]

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, if the file has a section table."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def read_section(self, sec: Section, max_bytes: int = 1 << 20) -> bytes:
        """The file bytes of a section, at most ``max_bytes`` (NOBITS sections are empty)."""
        if sec.type == SHT_NOBITS:
            return b""
        return self.read(sec.offset, min(sec.size, max_bytes))

    def loads(self) -> Iterator[Segment]:
        return (s for s in self.segments if s.type == PT_LOAD)

    def vaddr_to_offset(self, vaddr: int) -> tuple[int, int] | None:
        """(file offset, bytes available in the file from there) for a virtual address."""
        for seg in self.loads():
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                delta = vaddr - seg.vaddr
                return seg.offset + delta, seg.filesz - delta
        return None

    def read_vaddr(self, vaddr: int, n: int) -> bytes:
        """``n`` bytes at a virtual address; all of them must be backed by the file."""
        where = self.vaddr_to_offset(vaddr)
        if where is None:
            raise ElfError(f"address {vaddr:#x} is not in any loaded segment")
        offset, available = where
        if n > available:
            raise ElfError(f"{n} bytes at {vaddr:#x} run past the end of its segment")
        return self.read(offset, n)

    def interpreter(self) -> str | None:
        """The PT_INTERP path (``/lib/ld-musl-x86_64.so.1`` …), if dynamically linked."""
        for seg in self.segments:
            if seg.type == PT_INTERP:
                return _cstr(self.read(seg.offset, min(seg.filesz, MAX_NAME)), 0)
        return None

    def _dynamic_entries(self) -> list[tuple[int, int]]:
        seg = next((s for s in self.segments if s.type == PT_DYNAMIC), None)
        if seg is None:
            return []
        fmt = self.endian + ("qQ" if self.is64 else "iI")
        esize = struct.calcsize(fmt)
        count = min(seg.filesz // esize, MAX_DYNAMIC)
        data = self.read(seg.offset, count * esize)
        out = []
        for tag, val in struct.iter_unpack(fmt, data):
            if tag == DT_NULL:
                break
            out.append((tag, val))
        return out

    def dynamic(self) -> Dynamic:
        """DT_NEEDED and DT_SONAME, read through PT_DYNAMIC (no section table needed)."""
        entries = self._dynamic_entries()
        tags = dict(entries)
        if DT_STRTAB not in tags:
            return Dynamic([], None)
        where = self.vaddr_to_offset(tags[DT_STRTAB])
        if where is None:
            raise ElfError("DT_STRTAB is not in any loaded segment")
        offset, available = where
        limit = min(tags.get(DT_STRSZ, available), available)

        def string(index: int) -> str:
            if not 0 <= index < limit:
                raise ElfError(f"dynamic string {index} outside DT_STRTAB")
            return _cstr(self.read(offset + index, min(MAX_NAME, limit - index)), 0)

        needed = [string(v) for t, v in entries if t == DT_NEEDED]
        soname = string(tags[DT_SONAME]) if DT_SONAME in tags else None
        return Dynamic(needed, soname)

    def rela_addend(self, vaddr: int) -> int | None:
        """The addend of the RELA relocation at ``vaddr`` (``.rela.dyn`` or DT_RELA).

        Position-independent binaries may leave a pointer as 0 in the file and let the
        dynamic loader write ``base + addend``; the addend is then the pointer's target.
        """
        sec = self.section(".rela.dyn")
        if sec is not None and sec.type != SHT_NOBITS:
            offset, size = sec.offset, sec.size
        else:
            tags = dict(self._dynamic_entries())
            if DT_RELA not in tags or DT_RELASZ not in tags:
                return None
            where = self.vaddr_to_offset(tags[DT_RELA])
            if where is None:
                return None
            offset, size = where[0], min(tags[DT_RELASZ], where[1])
        fmt = self.endian + ("QQq" if self.is64 else "IIi")
        esize = struct.calcsize(fmt)
        data = self.read(offset, min(size, MAX_RELA) // esize * esize)
        for r_offset, _, addend in struct.iter_unpack(fmt, data):
            if r_offset == vaddr:
                return int(addend)
        return None

    def symbol(self, name: str) -> Symbol | None:
        """A named symbol of ``.symtab`` (unstripped files) or ``.dynsym``, if any.

        Only the string table is searched for the name; the symbol table is then
        scanned for that one string offset, so a big table costs one capped read.
        """
        wanted = name.encode()
        for table_name in (".symtab", ".dynsym"):
            table = self.section(table_name)
            if table is None or table.type == SHT_NOBITS:
                continue
            if not 0 < table.link < len(self.sections):
                continue
            strsec = self.sections[table.link]
            strtab = self.read(strsec.offset, min(strsec.size, MAX_SYMTAB))
            offsets = _string_offsets(strtab, wanted)
            if not offsets:
                continue
            fmt = self.endian + ("IBBHQQ" if self.is64 else "IIIBBH")
            esize = struct.calcsize(fmt)
            data = self.read(table.offset, min(table.size, MAX_SYMTAB) // esize * esize)
            for entry in struct.iter_unpack(fmt, data):
                if self.is64:
                    st_name, _, _, _, value, size = entry
                else:
                    st_name, value, size, _, _, _ = entry
                if st_name in offsets:
                    return Symbol(name, value, size)
        return None


def _cstr(table: bytes, offset: int) -> str:
    """The NUL-terminated string at ``offset`` of a string table ('' when out of range)."""
    if not 0 <= offset < len(table):
        return ""
    end = table.find(b"\x00", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", errors="replace")


def _string_offsets(table: bytes, name: bytes) -> set[int]:
    """Offsets in a string table where the NUL-terminated string ``name`` starts."""
    out = set()
    needle = name + b"\x00"
    pos = table.find(needle)
    while pos >= 0:
        if pos == 0 or table[pos - 1] == 0:
            out.add(pos)
        pos = table.find(needle, pos + 1)
    return out
