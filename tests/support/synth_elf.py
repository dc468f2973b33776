"""Build small ELF files with ``struct`` for tests: 32/64-bit, either byte order.

Real 32-bit, big-endian or pre-1.18 Go binaries are not installed here, so the parsers'
less common paths are checked against files laid out exactly as the ELF spec (and the
Go linker) lay them out. Layouts follow the System V gABI tables for Elf32/Elf64.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS = 1
SHT_STRTAB = 3
SHT_SYMTAB = 2
SHT_RELA = 4


@dataclass
class Load:
    """One PT_LOAD (or other) segment with its file bytes; memsz defaults to len(data)."""

    vaddr: int
    data: bytes
    flags: int = PF_R
    type: int = PT_LOAD
    memsz: int | None = None


@dataclass
class Sec:
    """A section over ``size`` bytes at ``start`` inside segment ``seg``."""

    name: str
    seg: int
    start: int
    size: int
    type: int = SHT_PROGBITS
    link: int = 0
    """Section index this one refers to (a symbol table's string table)."""


@dataclass
class Elf:
    is64: bool = True
    big: bool = False
    machine: int = 0x3E
    etype: int = 2
    loads: list[Load] = field(default_factory=list)
    sections: list[Sec] | None = None

    @property
    def order(self) -> str:
        return ">" if self.big else "<"

    def word(self, value: int) -> bytes:
        return struct.pack(self.order + ("Q" if self.is64 else "I"), value)

    def build(self) -> bytes:
        o = self.order
        ehsize = 64 if self.is64 else 52
        phentsize = 56 if self.is64 else 32
        shentsize = 64 if self.is64 else 40
        phoff = ehsize
        pos = phoff + phentsize * len(self.loads)
        offsets = []
        body = bytearray()
        for load in self.loads:
            pos = (pos + 0xFFF) & ~0xFFF
            offsets.append(pos)
            body += b"\x00" * (pos - ehsize - phentsize * len(self.loads) - len(body))
            body += load.data
            pos += len(load.data)
        phdrs = b""
        for load, off in zip(self.loads, offsets, strict=True):
            memsz = load.memsz if load.memsz is not None else len(load.data)
            if self.is64:
                phdrs += struct.pack(
                    o + "IIQQQQQQ",
                    load.type,
                    load.flags,
                    off,
                    load.vaddr,
                    load.vaddr,
                    len(load.data),
                    memsz,
                    0x1000,
                )
            else:
                phdrs += struct.pack(
                    o + "IIIIIIII",
                    load.type,
                    off,
                    load.vaddr,
                    load.vaddr,
                    len(load.data),
                    memsz,
                    load.flags,
                    0x1000,
                )
        shoff = shnum = shstrndx = 0
        tail = b""
        if self.sections is not None:
            names = b"\x00"
            name_offs = []
            for sec in [*self.sections, Sec(".shstrtab", -1, 0, 0)]:
                name_offs.append(len(names))
                names += sec.name.encode() + b"\x00"
            strtab_off = pos
            pos += len(names)
            pos = (pos + 7) & ~7
            shoff = pos
            rows = [(0, 0, 0, 0, 0, 0)]
            for sec, noff in zip(self.sections, name_offs, strict=False):
                load = self.loads[sec.seg]
                rows.append(
                    (
                        noff,
                        sec.type,
                        load.vaddr + sec.start,
                        offsets[sec.seg] + sec.start,
                        sec.size,
                        sec.link,
                    )
                )
            rows.append((name_offs[-1], SHT_STRTAB, 0, strtab_off, len(names), 0))
            shnum = len(rows)
            shstrndx = shnum - 1
            table = b""
            for name, stype, addr, off, size, link in rows:
                fmt = "IIQQQQIIQQ" if self.is64 else "IIIIIIIIII"
                table += struct.pack(o + fmt, name, stype, 0, addr, off, size, link, 0, 1, 0)
            tail = names + b"\x00" * (shoff - strtab_off - len(names)) + table
        ident = b"\x7fELF" + bytes([2 if self.is64 else 1, 2 if self.big else 1, 1]) + bytes(9)
        hdr_fmt = o + ("HHIQQQIHHHHHH" if self.is64 else "HHIIIIIHHHHHH")
        header = ident + struct.pack(
            hdr_fmt,
            self.etype,
            self.machine,
            1,
            self.loads[0].vaddr if self.loads else 0,
            phoff if self.loads else 0,
            shoff,
            0,
            ehsize,
            phentsize,
            len(self.loads),
            shentsize,
            shnum,
            shstrndx,
        )
        return header + phdrs + bytes(body) + tail


MAGIC = b"\xff Go buildinf:"
MOD_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
MOD_END = bytes.fromhex("f932433186182072008242104116d8f2")


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def modinfo(text: str) -> bytes:
    """modinfo framed by its sentinels, as runtime/debug emits it."""
    return MOD_START + text.encode() + MOD_END


def inline_blob(version: str, mod: bytes, big: bool = False, ptr: int = 8) -> bytes:
    head = MAGIC + bytes([ptr, 2 | (1 if big else 0)]) + bytes(16)
    v = version.encode()
    return head + uvarint(len(v)) + v + uvarint(len(mod)) + mod


def pointer_blob(
    elf: Elf, base: int, version: str, mod: bytes, zero_pointers: bool = False
) -> tuple[bytes, list[tuple[int, int]]]:
    """Segment bytes at ``base`` holding a pre-1.18 blob, plus (vaddr, target) relocations.

    With ``zero_pointers`` every pointer is left 0 in the file, as an internally linked
    PIE did before golang/go#37173, and must be recovered from the RELA addends.
    """
    p = 8 if elf.is64 else 4
    vhdr = base + 32
    mhdr = vhdr + 2 * p
    vdata = mhdr + 2 * p
    v = version.encode()
    mdata = vdata + len(v)
    flags = 1 if elf.big else 0
    relocs = [(base + 16, vhdr), (base + 16 + p, mhdr), (vhdr, vdata), (mhdr, mdata)]

    def ptr(value: int) -> bytes:
        return elf.word(0 if zero_pointers else value)

    head = MAGIC + bytes([p, flags]) + ptr(vhdr) + ptr(mhdr)
    head += bytes(32 - len(head))
    data = head + ptr(vdata) + elf.word(len(v)) + ptr(mdata) + elf.word(len(mod)) + v + mod
    return data, relocs


def rela_table(elf: Elf, relocs: list[tuple[int, int]]) -> bytes:
    o = elf.order
    r_type = 8 if elf.is64 else 0
    fmt = o + ("QQq" if elf.is64 else "IIi")
    return b"".join(struct.pack(fmt, off, r_type, target) for off, target in relocs)


def symtab(elf: Elf, symbols: list[tuple[str, int, int]]) -> tuple[bytes, bytes]:
    """(.symtab bytes, .strtab bytes) for (name, value, size) symbols, after a null one."""
    strtab = b"\x00"
    rows = [struct.pack(elf.order + ("IBBHQQ" if elf.is64 else "IIIBBH"), *([0] * 6))]
    for name, value, size in symbols:
        off = len(strtab)
        strtab += name.encode() + b"\x00"
        if elf.is64:
            rows.append(struct.pack(elf.order + "IBBHQQ", off, 0x11, 0, 1, value, size))
        else:
            rows.append(struct.pack(elf.order + "IIIBBH", off, value, size, 0x11, 0, 1))
    return b"".join(rows), strtab
