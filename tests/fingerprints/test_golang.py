"""Go build info from real Debian Go binaries and from synthetic files in every format.

Ground truth for the real binaries is read in the test: the Go toolchain Debian built
them with (``Built-Using: golang-1.xx (= 1.xx.y-z)``), the package homepage (the main
package path for dh-golang GOPATH builds) and ``ctr --version``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fingerprints.base import Detection, ProcessView
from fingerprints.detectors.golang import (
    GoBuildInfoError,
    detect_go,
    go_unquote_prefix,
    parse_modinfo,
    parse_version,
    read_go_info,
    strip_sentinels,
)
from fingerprints.reading.elf import bytes_reader
from fingerprints.reading.rootfs import ConfinedRoot
from tests.support.synth_elf import (
    PF_R,
    PF_W,
    PF_X,
    SHT_RELA,
    SHT_STRTAB,
    SHT_SYMTAB,
    Elf,
    Load,
    Sec,
    inline_blob,
    modinfo,
    pointer_blob,
    rela_table,
    symtab,
)

PYTHON = os.path.realpath(sys.executable)
DEBIAN_GO = {"containerd": "/usr/bin/containerd", "runc": "/usr/sbin/runc"}


def built_with_go(package: str) -> str:
    """``go1.19.8`` from the package's Built-Using golang-1.xx (= 1.19.8-2)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Built-Using}", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"golang-1\.\d+ \(= ([0-9.]+)-", out)
    assert m, out
    return "go" + m.group(1)


def homepage(package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Homepage}", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.removeprefix("https://").rstrip("/")


def version_output(exe: str) -> str:
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout


def file_reader(path: str) -> bytes:
    return Path(path).read_bytes()


@pytest.mark.parametrize("package", sorted(DEBIAN_GO))
def test_debian_binaries(package: str) -> None:
    exe = DEBIAN_GO[package]
    info = read_go_info(bytes_reader(file_reader(exe)))
    assert info is not None
    assert info.version == built_with_go(package)
    assert info.format == "inline" and info.confidence == "exact"
    assert info.settings.get("GOOS") == "linux"
    assert info.path is not None
    if package == "containerd":
        # "containerd github.com/containerd/containerd 1.6.20~ds1 ..."
        assert info.path.startswith(version_output(exe).split()[1] + "/cmd/")
    else:
        # runc prints its own toolchain: "go: go1.19.8"
        assert f"go: {info.version}" in version_output(exe)
        assert info.path == homepage(package)


def test_ctr_matches_its_own_version_output() -> None:
    """``ctr --version`` names its module; ``ctr version`` prints its Go version."""
    mod = subprocess.run(["ctr", "--version"], capture_output=True, text=True).stdout.split()[1]
    out = subprocess.run(
        ["ctr", "--address", "/nonexistent/ri-test.sock", "--connect-timeout", "1ms", "version"],
        capture_output=True,
        text=True,
    ).stdout
    go = re.search(r"Go version:\s+(\S+)", out)
    assert go is not None
    info = read_go_info(bytes_reader(file_reader("/usr/bin/ctr")))
    assert info is not None and info.version == go.group(1)
    assert info.path is not None and info.path.startswith(mod)


def test_symbol_fallback_on_a_real_binary_without_buildinfo() -> None:
    """containerd with its build info magic wiped: runtime.buildVersion's symbol remains."""
    data = file_reader(DEBIAN_GO["containerd"])
    assert data.count(b"\xff Go buildinf:") == 1
    wiped = data.replace(b"\xff Go buildinf:", bytes(14))
    info = read_go_info(bytes_reader(wiped))
    assert info is not None
    assert (info.version, info.format, info.confidence) == (
        built_with_go("containerd"),
        "symbol",
        "exact",
    )
    assert info.settings["pclntab"] == "go1.18-go1.19"


def _without_section_table(data: bytes) -> bytes:
    """What sstrip (or a hand-made loader) leaves: e_shoff, e_shnum, e_shstrndx zeroed."""
    out = bytearray(data)
    assert out[4] == 2 and out[5] == 1, "x86-64 little-endian expected"
    out[0x28:0x30] = bytes(8)
    out[0x3C:0x40] = bytes(4)
    return bytes(out)


def test_real_binary_without_section_table_is_found_in_the_data_segment() -> None:
    info = read_go_info(bytes_reader(_without_section_table(file_reader(DEBIAN_GO["runc"]))))
    assert info is not None
    assert (info.version, info.format, info.error) == (built_with_go("runc"), "inline", None)
    assert info.path == homepage("runc")


def test_real_binary_with_renamed_buildinfo_section_falls_back_to_segments() -> None:
    data = file_reader(DEBIAN_GO["runc"])
    assert data.count(b"\x00.go.buildinfo\x00") == 1
    renamed = data.replace(b"\x00.go.buildinfo\x00", b"\x00.xx.buildinfo\x00")
    info = read_go_info(bytes_reader(renamed))
    assert info is not None and (info.version, info.format) == (built_with_go("runc"), "inline")


def test_real_binary_with_corrupt_blob_falls_back_and_says_why() -> None:
    data = bytearray(file_reader(DEBIAN_GO["containerd"]))
    at = data.index(b"\xff Go buildinf:")
    data[at + 15] = 0  # inline flag cleared: the varint strings now read as pointers
    info = read_go_info(bytes_reader(bytes(data)))
    assert info is not None
    assert (info.version, info.format) == (built_with_go("containerd"), "symbol")
    assert info.error is not None and "build info unusable" in info.error
    det = detect_go(_view(bytes(data), "/"))
    assert det is not None and det.extra["goBuildInfoError"] == info.error


def test_non_go_version_in_a_blob_is_an_error() -> None:
    e = Elf()
    e.loads = [Load(0x800000, inline_blob("python3.11", b"") + bytes(32), PF_R | PF_W)]
    with pytest.raises(GoBuildInfoError, match="not a Go version"):
        read_go_info(bytes_reader(e.build()))


def test_data_segment_of_a_non_go_binary_with_sections_is_not_scanned() -> None:
    """A C program may carry the magic as data (a scanner tool): not a Go binary."""
    e = Elf()
    blob = inline_blob("go1.22.6", b"")
    e.loads = [Load(0x400000, b"\x90" * 16, PF_R | PF_X), Load(0x600000, blob, PF_R | PF_W)]
    e.sections = [Sec(".text", 0, 0, 16), Sec(".data", 1, 0, len(blob))]
    assert read_go_info(bytes_reader(e.build())) is None
    e.sections = [Sec(".text", 0, 0, 16), Sec(".data", 1, 0, len(blob)), Sec(".gopclntab", 0, 0, 8)]
    info = read_go_info(bytes_reader(e.build()))
    assert info is not None and info.version == "go1.22.6"


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
def test_symbol_fallback_pre_113(is64: bool, big: bool) -> None:
    """Go < 1.13 had no build info; unstripped binaries keep runtime.buildVersion."""
    e = Elf(is64=is64, big=big)
    p = 8 if is64 else 4
    data_vaddr = 0x600000
    version = b"go1.12.17"
    header = e.word(data_vaddr + 2 * p) + e.word(len(version))
    table, strings = symtab(e, [("runtime.buildVersion", data_vaddr, 2 * p)])
    pcln = (b"\xff\xff\xff\xfb" if big else b"\xfb\xff\xff\xff") + bytes([0, 0, 1, p])
    e.loads = [
        Load(0x400000, pcln + bytes(8) + table + strings, PF_R),
        Load(data_vaddr, header + version + bytes(7), PF_R | PF_W),
    ]
    e.sections = [
        Sec(".gopclntab", 0, 0, 16),
        Sec(".symtab", 0, 16, len(table), SHT_SYMTAB, link=3),
        Sec(".strtab", 0, 16 + len(table), len(strings), SHT_STRTAB),
    ]
    info = read_go_info(bytes_reader(e.build()))
    assert info is not None
    assert (info.version, info.format, info.confidence) == ("go1.12.17", "symbol", "exact")
    assert info.settings["pclntab"] == "go1.2-go1.15"


def test_non_go_binary_is_none() -> None:
    assert read_go_info(bytes_reader(file_reader(PYTHON))) is None


MOD_TEXT = (
    "path\texample.com/app/cmd/app\n"
    "mod\texample.com/app\tv1.2.3\th1:abc=\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:def=\n"
    "=>\t../sys\t(devel)\t\n"
    "build\t-ldflags=\"-s -w -X 'main.v=1'\"\n"
    "build\tvcs.revision=0123456789abcdef\n"
    "build\tvcs.modified=true\n"
)


def _inline_elf(is64: bool, big: bool, version: str, sections: bool) -> bytes:
    e = Elf(is64=is64, big=big)
    blob = inline_blob(version, modinfo(MOD_TEXT), big=big, ptr=8 if is64 else 4)
    rw = b"\x00" * 0x40 + blob + b"\x00" * 64
    e.loads = [Load(0x400000, b"\x90" * 64, PF_R | PF_X), Load(0x600000, rw, PF_R | PF_W)]
    if sections:
        e.sections = [Sec(".go.buildinfo", 1, 0x40, len(blob))]
    return e.build()


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("sections", [True, False])
def test_inline_format(is64: bool, big: bool, sections: bool) -> None:
    info = read_go_info(bytes_reader(_inline_elf(is64, big, "go1.22.6", sections)))
    assert info is not None
    assert (info.version, info.format) == ("go1.22.6", "inline")
    assert info.path == "example.com/app/cmd/app"
    assert (info.main_module, info.main_version) == ("example.com/app", "v1.2.3")
    assert info.deps == [("../sys", "(devel)")]
    assert info.settings["-ldflags"] == "-s -w -X 'main.v=1'"
    assert info.settings["vcs.revision"] == "0123456789abcdef"


def _pointer_elf(is64: bool, big: bool, pie: bool) -> bytes:
    e = Elf(is64=is64, big=big, etype=3 if pie else 2)
    base = 0x600000
    data, relocs = pointer_blob(e, base, "go1.16.15", modinfo(MOD_TEXT), zero_pointers=pie)
    rela = rela_table(e, relocs)
    e.loads = [
        Load(0x400000, b"\x90" * 64, PF_R | PF_X),
        Load(0x500000, rela, PF_R),
        Load(base, data + b"\x00" * 32, PF_R | PF_W),
    ]
    if pie:
        e.sections = [Sec(".rela.dyn", 1, 0, len(rela), SHT_RELA)]
        e.sections.append(Sec(".go.buildinfo", 2, 0, 32))
    return e.build()


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("pie", [False, True])
def test_pointer_format(is64: bool, big: bool, pie: bool) -> None:
    """Go 1.13–1.17 layout; PIE variants hold zero pointers resolved via RELA addends."""
    info = read_go_info(bytes_reader(_pointer_elf(is64, big, pie)))
    assert info is not None
    assert (info.version, info.format) == ("go1.16.15", "pointer")
    assert info.main_module == "example.com/app"
    assert info.settings["vcs.modified"] == "true"


def test_blob_deep_in_writable_segment_without_sections() -> None:
    """External-linked PIE: the blob sits >1 MiB into the RW segment (Debian age)."""
    e = Elf()
    blob = inline_blob("go1.19.8", modinfo("path\tfilippo.io/age/cmd/age\n"))
    fake = b"\xff Go buildinf:\x08\x02garbage"
    rw = b"\x01" * 3 + fake + b"\x00" * (0x123280 - 3 - len(fake)) + blob
    e.loads = [Load(0x400000, b"\x90" * 16, PF_R | PF_X), Load(0x800000, rw, PF_R | PF_W)]
    info = read_go_info(bytes_reader(e.build()))
    assert info is not None and info.version == "go1.19.8"
    assert info.path == "filippo.io/age/cmd/age"


def test_fake_magic_with_impossible_lengths_is_an_error() -> None:
    e = Elf()
    head = b"\xff Go buildinf:\x08\x02" + bytes(16)
    rw = head + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 64
    e.loads = [Load(0x800000, rw, PF_R | PF_W)]
    with pytest.raises(GoBuildInfoError):
        read_go_info(bytes_reader(e.build()))
    pointer_head = b"\xff Go buildinf:\x03\x00" + bytes(16)
    e.loads = [Load(0x800000, pointer_head + bytes(64), PF_R | PF_W)]
    with pytest.raises(GoBuildInfoError, match="pointer size"):
        read_go_info(bytes_reader(e.build()))


def test_pclntab_section_and_rodata_heuristic() -> None:
    """No build info (esbuild >= 0.27 on npm): pclntab dates it, .rodata names it."""
    e = Elf()
    pcln = bytes.fromhex("f1ffffff00000108") + bytes(56)
    rodata = b"\x00runtime\x00go1.25.4\x00other strings go1.x\x00"
    e.loads = [Load(0x400000, pcln + rodata, PF_R)]
    e.sections = [Sec(".gopclntab", 0, 0, len(pcln)), Sec(".rodata", 0, len(pcln), len(rodata))]
    info = read_go_info(bytes_reader(e.build()))
    assert info is not None
    assert (info.version, info.confidence) == ("go1.25.4", "heuristic")
    assert info.settings["pclntab"] == ">=go1.20"


def test_pclntab_scan_without_sections_big_endian() -> None:
    e = Elf(big=True)
    pcln = b"\x00" * 24 + bytes.fromhex("fffffffa00000208") + bytes(32)
    e.loads = [Load(0x400000, pcln, PF_R), Load(0x600000, bytes(64), PF_R | PF_W)]
    info = read_go_info(bytes_reader(e.build()))
    assert info is not None
    assert (info.version, info.confidence) == (None, "unknown")
    assert info.settings["pclntab"] == "go1.16-go1.17"


@pytest.mark.parametrize(
    "raw,version,vendor,experiment",
    [
        ("go1.22.6", "go1.22.6", None, None),
        ("go1.20", "go1.20", None, None),
        (
            "go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime",
            "go1.21.11",
            "Red Hat",
            "strictfipsruntime",
        ),
        ("go1.26.0-X:nodwarf5", "go1.26.0", None, "nodwarf5"),
        ("devel go1.23-abcdef Tue Jan 1", "go1.23-abcdef", None, None),
        ("go1.23.1 X:nocoverageredesign", "go1.23.1", None, "nocoverageredesign"),
        ("go1.22 ((x (Acme Go 1.22-3)", "go1.22", "Acme Go", None),
        ("go1.22 (( 1.2) (Vendor 2)", "go1.22", "Vendor", None),
        ("go1.22 (no version here)", "go1.22", None, None),
    ],
)
def test_version_normalisation(
    raw: str, version: str, vendor: str | None, experiment: str | None
) -> None:
    info = parse_version(raw.encode())
    assert (info.version, info.vendor, info.experiment) == (version, vendor, experiment)
    assert info.version_raw == (raw if raw != version else None)


def test_modinfo_sentinels_and_quoting() -> None:
    assert strip_sentinels(b"path\tx\n") == ""
    text = strip_sentinels(modinfo("path\tx\n"))
    assert text == "path\tx\n"
    assert go_unquote_prefix('"a\\tb\\"c\\x41\\u00e9\\101" rest') == ('a\tb"cAéA', 23)
    assert go_unquote_prefix("`raw \\n`x") == ("raw \\n", 8)
    with pytest.raises(ValueError):
        go_unquote_prefix('"unterminated')
    info = parse_version(b"go1.22.0")
    parse_modinfo('build\t"we ird"="v a l"\nbuild\tbroken\nbuild\t"x"y\nmod\tonly\n', info)
    assert info.settings == {"we ird": "v a l"}
    assert info.main_module is None


def _view(exe: bytes, root: str) -> ProcessView:
    reader = bytes_reader(exe)
    return ProcessView(
        pid=1,
        comm="app",
        argv=["/app"],
        environ={},
        cwd="/",
        exe="/app",
        maps=[],
        root=ConfinedRoot(root),
        read_exe=reader,
    )


def test_detector_output(tmp_path: Path) -> None:
    """kindVersion as the binary carries it (insights-runtime-extractor reports Go's
    buildinfo GoVersion unchanged, and no implementer); the parts under their own names."""
    det = detect_go(_view(_inline_elf(True, False, "go1.21.11 (Red Hat 1.21.11-1) X:f", True), "/"))
    assert det == Detection(
        kind="Golang",
        kind_version="go1.21.11 (Red Hat 1.21.11-1) X:f",
        kind_implementer=None,
        extra={
            "goVersionConfidence": "exact",
            "goVersion": "go1.21.11",
            "goVendor": "Red Hat",
            "goExperiment": "f",
            "goMainPath": "example.com/app/cmd/app",
            "goMainModule": "example.com/app",
            "goMainModuleVersion": "v1.2.3",
            "vcsRevision": "0123456789abcdef",
            "vcsModified": "true",
        },
    )
    assert detect_go(_view(b"#!/bin/sh\necho hi\n", str(tmp_path))) is None
    assert detect_go(_view(file_reader(PYTHON), str(tmp_path))) is None
