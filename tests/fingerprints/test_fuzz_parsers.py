"""Property tests: arbitrary or mutated bytes make the parsers raise only their own error,
in bounded time.

Container files are attacker-controlled, so a parser that raises IndexError, struct.error
or MemoryError on some input would turn a hostile image into an agent crash, and one that
loops on a crafted length would stall the pass.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprints.base import Detection, FingerprintError, ProcessView
from fingerprints.detectors.golang import (
    GoBuildInfoError,
    GoInfo,
    go_unquote_prefix,
    parse_modinfo,
    read_go_info,
)
from fingerprints.detectors.os_release import parse_os_release
from fingerprints.detectors.registry import DETECTORS
from fingerprints.reading.elf import ElfError, ElfFile, bytes_reader
from fingerprints.reading.processes import mapped_files, parse_environ
from fingerprints.reading.rootfs import Budget, ConfinedRoot
from tests.support.synth_elf import (
    PF_R,
    PF_W,
    PF_X,
    SHT_STRTAB,
    SHT_SYMTAB,
    Elf,
    Load,
    Sec,
    inline_blob,
    modinfo,
    pointer_blob,
    symtab,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T = TypeVar("T")
BOUND = 2.0
"""Seconds one parse of a ≤ 8 KiB input may take: microseconds are expected, a crafted
length or offset that makes a parser loop or read gigabytes shows up as seconds."""


def bounded(fn: Callable[[], T]) -> T:
    """``fn()``; the example fails when it takes longer than BOUND, even by raising."""
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - t0 < BOUND, "parse time must not depend on the input"


def _seeds() -> list[bytes]:
    """Valid files of each shape, for mutation: inline/pointer, 32/64, LE/BE, ± sections."""
    out = []
    for is64 in (True, False):
        for big in (False, True):
            e = Elf(is64=is64, big=big)
            blob = inline_blob("go1.22.6", modinfo("path\tx\nbuild\tGOOS=linux\n"), big=big)
            e.loads = [Load(0x400000, b"\x90" * 32, PF_R | PF_X), Load(0x600000, blob, PF_R | PF_W)]
            e.sections = [Sec(".go.buildinfo", 1, 0, len(blob)), Sec(".rodata", 0, 0, 32)]
            out.append(e.build())
            p = Elf(is64=is64, big=big)
            data, _ = pointer_blob(p, 0x600000, "go1.16.3", modinfo("path\ty\n"))
            p.loads = [Load(0x600000, data, PF_R | PF_W)]
            out.append(p.build())
    s = Elf()
    header = s.word(0x600010) + s.word(9)
    table, strings = symtab(s, [("runtime.buildVersion", 0x600000, 16)])
    pcln = bytes.fromhex("fbffffff00000108") + bytes(8)
    s.loads = [
        Load(0x400000, pcln + table + strings, PF_R),
        Load(0x600000, header + b"go1.12.17", PF_R | PF_W),
    ]
    s.sections = [
        Sec(".gopclntab", 0, 0, 16),
        Sec(".symtab", 0, 16, len(table), SHT_SYMTAB, link=3),
        Sec(".strtab", 0, 16 + len(table), len(strings), SHT_STRTAB),
    ]
    out.append(s.build())
    g = Elf()
    props = b"\x00com.oracle.svm.core.VM=GraalVM CE 25+37.1\x00"
    props += b"com.oracle.svm.core.VM.Java.Version=25\x00"
    heap = b"\x00\x00__quarkus_analytics__quarkus.version=3.15.1\x07quarkus.native\x00"
    comment = b"rustc version 1.95.0 (59807616e 2026-04-14)\x00"
    g.loads = [Load(0x400000, props + comment, PF_R), Load(0x600000, heap, PF_R | PF_W)]
    g.sections = [
        Sec(".rodata", 0, 0, len(props)),
        Sec(".comment", 0, len(props), len(comment)),
        Sec(".svm_heap", 1, 0, len(heap)),
    ]
    out.append(g.build())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _exercise_elf(data: bytes) -> None:
    bounded(lambda: _elf_calls(data))


def _elf_calls(data: bytes) -> None:
    elf = ElfFile(bytes_reader(data), max_read=1 << 20)
    elf.interpreter()
    elf.dynamic()
    elf.rela_addend(0x600010)
    elf.symbol("runtime.buildVersion")
    for sec in elf.sections:
        elf.read_section(sec, 4096)
    for seg in elf.loads():
        elf.vaddr_to_offset(seg.vaddr)


@FUZZ
@given(st.one_of(st.binary(max_size=512), mutated()))
def test_elf_raises_only_elf_error(data: bytes) -> None:
    try:
        _exercise_elf(data)
    except ElfError as e:
        assert str(e), "errors must say what is wrong"


@FUZZ
@given(st.one_of(st.binary(max_size=512), mutated()))
def test_buildinfo_raises_only_its_error(data: bytes) -> None:
    try:
        info = bounded(partial(read_go_info, bytes_reader(data), max_read=1 << 20))
    except GoBuildInfoError as e:
        assert str(e), "errors must say what is wrong"
        return
    assert info is None or isinstance(info, GoInfo)


@FUZZ
@given(st.text(max_size=300))
def test_text_parsers_never_raise(text: str) -> None:
    info = GoInfo(version="go1")
    parse_modinfo(text, info)
    assert all(isinstance(k, str) for k in info.settings)
    assert isinstance(parse_os_release(text), dict)
    if text:
        try:
            value, used = go_unquote_prefix('"' + text)
        except ValueError:
            return
        assert 0 < used <= len(text) + 1 and isinstance(value, str)


@FUZZ
@given(st.binary(max_size=600), st.text(max_size=20))
def test_proc_parsers_never_raise(data: bytes, root: str) -> None:
    assert all(isinstance(p, str) for p in mapped_files(data, root))
    assert all(isinstance(k, str) for k in parse_environ(data))


EXE_NAMES = ["app", "python3.11", "node", "java", "ruby3.1", "php-fpm8.2", "perl", "beam.smp"]
MAPS = [
    "/opt/jdk/lib/server/libjvm.so",
    "/usr/lib/libpython3.12.so.1.0",
    "/usr/lib/libnode.so.115",
    "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.4/libcoreclr.so",
]


@pytest.fixture(scope="module")
def empty_root() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ri-fuzz-root-") as root:
        yield root


@FUZZ
@given(
    st.one_of(st.binary(max_size=512), mutated()),
    st.sampled_from(EXE_NAMES),
    st.lists(st.sampled_from(MAPS), max_size=2),
)
def test_every_detector_on_a_hostile_executable(
    empty_root: str, data: bytes, name: str, maps: list[str]
) -> None:
    """The running binary is the one file a container cannot hide: every registered
    detector must answer or raise a FingerprintError, within the time bound."""
    view = ProcessView(
        pid=1,
        comm=name[:15],
        argv=[f"/usr/bin/{name}", "-jar", "/app.jar", "app.py"],
        environ={},
        cwd="/",
        exe=f"/usr/bin/{name}",
        maps=maps,
        root=ConfinedRoot(empty_root, Budget(max_seconds=BOUND)),
        read_exe=bytes_reader(data),
    )
    for detector in DETECTORS:
        try:
            found = bounded(partial(detector, view))
        except FingerprintError as e:
            assert str(e), f"{detector.__module__}: errors must say what is wrong"
            continue
        assert found is None or isinstance(found, Detection)


def test_seeds_are_valid() -> None:
    """The mutation seeds themselves parse, so mutations start from meaningful files."""
    versions = [i.version for i in (read_go_info(bytes_reader(s)) for s in SEEDS) if i]
    assert versions == ["go1.22.6", "go1.16.3"] * 4 + ["go1.12.17"]
    view = ProcessView(
        pid=1,
        comm="app",
        argv=["/app"],
        environ={},
        cwd="/",
        exe="/app",
        maps=[],
        root=ConfinedRoot("/nonexistent"),
        read_exe=bytes_reader(SEEDS[-1]),
    )
    found = {d.__module__: d(view) for d in DETECTORS}
    graal, rust = found["fingerprints.detectors.graalvm"], found["fingerprints.detectors.rust"]
    assert graal is not None and graal.runtimes == [("Quarkus", "3.15.1")]
    assert graal.extra["graalvmVM"] == "GraalVM CE 25+37.1"
    assert rust is not None and rust.kind_version == "1.95.0"
