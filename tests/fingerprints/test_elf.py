"""The ELF reader against real binaries (checked with binutils' readelf) and synthetic
32/64-bit, little/big-endian files built in the test."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fingerprints.base import Reader
from fingerprints.reading.elf import (
    PT_DYNAMIC,
    PT_INTERP,
    PT_LOAD,
    ElfError,
    ElfFile,
    bytes_reader,
)
from tests.support.synth_elf import PF_R, PF_W, PF_X, SHT_STRTAB, SHT_SYMTAB, Elf, Load, Sec, symtab

REAL = ["/usr/bin/containerd", "/usr/sbin/runc", sys.executable]


def file_reader(path: str) -> Reader:
    data = Path(path).read_bytes()
    return bytes_reader(data)


def readelf(*args: str) -> str:
    exe = shutil.which("readelf")
    if exe is None:
        pytest.skip("binutils (readelf) is not installed")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("path", REAL)
def test_real_binary_matches_readelf(path: str) -> None:
    real = str(Path(path).resolve())
    elf = ElfFile(file_reader(real))
    header = readelf("-h", real)
    assert f"Number of program headers:         {len(elf.segments)}" in header
    assert re.search(r"Machine:\s+.*X86-64", header) and elf.machine == 0x3E
    assert ("ELF64" in header) == elf.is64 and "little endian" in header
    loads = re.findall(r"^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)", readelf("-lW", real), re.M)
    assert [(s.offset, s.vaddr) for s in elf.loads()] == [
        (int(o, 16), int(v, 16)) for o, v in loads
    ]
    names = re.findall(r"^\s+\[\s*\d+\]\s+(\S+)", readelf("-SW", real), re.M)
    assert [s.name for s in elf.sections[1:]] == names[1:]
    dyn = readelf("-dW", real)
    assert elf.dynamic().needed == re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn)
    interp = re.search(r"Requesting program interpreter: (\S+)\]", readelf("-lW", real))
    assert interp is not None and elf.interpreter() == interp.group(1)
    assert elf.bytes_read < 1 << 20, "headers only: a 50 MB binary must not be read whole"


def test_shared_library_soname() -> None:
    lib = next(Path("/usr/lib/x86_64-linux-gnu").glob("libz.so.1.*"))
    soname = re.search(r"\(SONAME\)\s+Library soname: \[(.+?)\]", readelf("-dW", str(lib)))
    assert soname is not None
    assert ElfFile(file_reader(str(lib))).dynamic().soname == soname.group(1)


def _dynamic_elf(is64: bool, big: bool) -> tuple[Elf, bytes]:
    e = Elf(is64=is64, big=big)
    strtab = b"\x00libfoo.so.1\x00libbar.so\x00libme.so.7\x00"
    o = e.order
    fmt = o + ("qQ" if is64 else "iI")
    dyn = b"".join(
        struct.pack(fmt, t, v)
        for t, v in [(1, 1), (1, 13), (5, 0x20000), (10, len(strtab)), (14, 23), (0, 0)]
    )
    e.loads = [
        Load(0x10000, b"\x90" * 64, PF_R | PF_X),
        Load(0x20000, strtab, PF_R),
        Load(0x30000, dyn, PF_R | PF_W, type=PT_DYNAMIC),
        Load(0x40000, b"/lib/ld-musl-x86_64.so.1\x00", PF_R, type=PT_INTERP),
    ]
    return e, e.build()


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
def test_synthetic_headers_segments_dynamic(is64: bool, big: bool) -> None:
    e, data = _dynamic_elf(is64, big)
    elf = ElfFile(bytes_reader(data))
    assert elf.is64 == is64 and elf.big_endian == big and elf.ptr_size == (8 if is64 else 4)
    assert [s.type for s in elf.segments] == [PT_LOAD, PT_LOAD, PT_DYNAMIC, PT_INTERP]
    assert [s.flags for s in elf.segments] == [load.flags for load in e.loads]
    assert elf.sections == []
    assert elf.read_vaddr(0x10010, 4) == b"\x90" * 4
    assert elf.vaddr_to_offset(0x5) is None
    with pytest.raises(ElfError):
        elf.read_vaddr(0x10000 + 60, 8)
    dyn = elf.dynamic()
    assert dyn.needed == ["libfoo.so.1", "libbar.so"]
    assert dyn.soname == "libme.so.7"
    assert elf.interpreter() == "/lib/ld-musl-x86_64.so.1"


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
def test_synthetic_sections(is64: bool, big: bool) -> None:
    e = Elf(is64=is64, big=big)
    e.loads = [Load(0x400000, b"A" * 32 + b"hello world" + b"B" * 21, PF_R)]
    e.sections = [Sec(".text", 0, 0, 32), Sec(".rodata", 0, 32, 11)]
    elf = ElfFile(bytes_reader(e.build()))
    names = [s.name for s in elf.sections]
    assert names == ["", ".text", ".rodata", ".shstrtab"]
    sec = elf.section(".rodata")
    assert sec is not None and sec.addr == 0x400020
    assert elf.read_section(sec) == b"hello world"
    assert elf.read_section(sec, max_bytes=5) == b"hello"
    assert elf.section(".nope") is None


def test_broken_section_table_is_ignored_not_fatal() -> None:
    e = Elf()
    e.loads = [Load(0x400000, b"x" * 16)]
    e.sections = [Sec(".text", 0, 0, 16)]
    data = bytearray(e.build())
    data[0x28:0x30] = (len(data) + 4096).to_bytes(8, "little")  # e_shoff past the end
    elf = ElfFile(bytes_reader(bytes(data)))
    assert elf.sections == [] and len(elf.segments) == 1


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "truncated"),
        (b"\x7fELF", "truncated"),
        (b"MZ\x90\x00" + bytes(60), "bad magic"),
        (b"\x7fELF\x03\x01" + bytes(58), "class"),
        (b"\x7fELF\x02\x07" + bytes(58), "encoding"),
        (b"#!/bin/sh\n" + bytes(60), "bad magic"),
    ],
)
def test_malformed_headers(data: bytes, match: str) -> None:
    with pytest.raises(ElfError, match=match):
        ElfFile(bytes_reader(data))


def test_every_truncation_is_an_elf_error() -> None:
    """A file cut anywhere either still parses what it has or raises ElfError."""
    _, data = _dynamic_elf(True, False)
    outcomes = set()
    for cut in range(0, len(data) + 1, 7):
        try:
            elf = ElfFile(bytes_reader(data[:cut]))
            outcomes.add(("ok", elf.dynamic().soname, elf.interpreter()))
        except ElfError:
            outcomes.add(("error", None, None))
    assert ("error", None, None) in outcomes
    full = ElfFile(bytes_reader(data))
    assert full.dynamic().soname == "libme.so.7"


def test_read_cap() -> None:
    _, data = _dynamic_elf(True, False)
    with pytest.raises(ElfError, match="read cap"):
        ElfFile(bytes_reader(data), max_read=100)


def test_implausible_program_header_count() -> None:
    _, data = _dynamic_elf(True, False)
    raw = bytearray(data)
    raw[0x38:0x3A] = (0xFFFF).to_bytes(2, "little")  # e_phnum
    with pytest.raises(ElfError, match="implausible"):
        ElfFile(bytes_reader(bytes(raw)))


def test_dynamic_symbol_of_a_real_binary_matches_nm() -> None:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("binutils (nm) is not installed")
    out = subprocess.run(
        [nm, "-D", "--defined-only", "/usr/bin/containerd"], capture_output=True, text=True
    ).stdout
    m = re.search(r"^([0-9a-f]+) \S runtime\.buildVersion$", out, re.M)
    assert m is not None
    sym = ElfFile(file_reader("/usr/bin/containerd")).symbol("runtime.buildVersion")
    assert sym is not None and sym.value == int(m.group(1), 16)


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
def test_synthetic_symbols(is64: bool, big: bool) -> None:
    e = Elf(is64=is64, big=big)
    table, strings = symtab(e, [("main.x", 0x1000, 4), ("x", 0x2000, 8), ("main.main", 0x3000, 9)])
    e.loads = [Load(0x400000, table + strings, PF_R)]
    e.sections = [
        Sec(".symtab", 0, 0, len(table), SHT_SYMTAB, link=2),
        Sec(".strtab", 0, len(table), len(strings), SHT_STRTAB),
    ]
    elf = ElfFile(bytes_reader(e.build()))
    sym = elf.symbol("x")
    assert sym is not None and (sym.value, sym.size) == (0x2000, 8)
    main = elf.symbol("main.main")
    assert main is not None and main.value == 0x3000
    assert elf.symbol("main") is None and elf.symbol("nope") is None
