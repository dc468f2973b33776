"""GraalVM / Mandrel native images (ahead-of-time compiled Java), and Quarkus native.

A native image has no libjvm: insights-runtime-extractor recognises it by the ELF section
``.svm_heap`` and reports kind ``GraalVM`` with no version and no implementer, so those two
fields stay empty here too (its consumers compare them). The builder also leaves
NUL-terminated properties in ``.data`` or ``.rodata``, such as
``com.oracle.svm.core.VM=GraalVM CE 25+37.1`` and ``…VM.Java.Version=25``: they are
reported under new names (``graalvmVM``, ``graalvmImplementer`` — GraalVM CE / Oracle
GraalVM / Mandrel / Liberica NIK — and ``javaVersion``). Quarkus native apps embed
``__quarkus_analytics__quarkus.version=<v>`` (≥ 3.15) or, older, only ``quarkus.native``
strings: runtime ``Quarkus`` with or without a version, as that tool reports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fingerprints.base import Detection, FingerprintError, ProcessView
from fingerprints.reading.binscan import SCAN_CAP, iter_matches
from fingerprints.reading.elf import SHT_NOBITS, ElfFile
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "GraalVM"
HEAP_CAP = 24 << 20
"""Most of the image heap searched for Quarkus' marker: heaps reach 100 MB and the
container's byte budget must also cover every other detector."""
_PROPERTY_SECTIONS = (".data", ".rodata")

_VM = re.compile(rb"com\.oracle\.svm\.core\.VM=([^\x00]{1,80})\x00")
_JAVA = re.compile(rb"com\.oracle\.svm\.core\.VM\.Java\.Version=([^\x00]{1,40})\x00")
_QUARKUS = re.compile(rb"quarkus(?:_analytics__quarkus\.version=([\w.+-]{1,40})|\.native)")
"""Heap strings are Java strings (length-prefixed, not NUL-ended): the version ends at the
first byte that cannot be part of one, as in IRE's printable-run scan."""
_IMPLEMENTERS = (
    (re.compile(r"Mandrel"), "Mandrel"),
    (re.compile(r"Liberica"), "Liberica NIK"),
    (re.compile(r"GraalVM\b.*\bCE\b"), "GraalVM CE"),
    (re.compile(r"Oracle GraalVM|GraalVM\b.*\bEE\b"), "Oracle GraalVM"),
    (re.compile(r"GraalVM"), "GraalVM"),
)
"""VM values seen: ``GraalVM CE 25+37.1``, ``GraalVM 22.0.0.2 Java 11 CE``,
``GraalVM 20.2.0 Java 11 EE``, ``Liberica-NIK-25.0.0-1``, ``Mandrel-23.1…``."""


def implementer(vm: str) -> str | None:
    """The distribution named by a ``com.oracle.svm.core.VM`` value."""
    for pattern, name in _IMPLEMENTERS:
        if pattern.search(vm):
            return name
    return None


def _decode(match: re.Match[bytes] | None, group: int = 1) -> str | None:
    value = match.group(group) if match else None
    return value.decode("utf-8", "replace") if value else None


def _section_matches(
    elf: ElfFile, names: tuple[str, ...], pattern: re.Pattern[bytes], cap: int = SCAN_CAP
) -> Iterator[re.Match[bytes]]:
    """Matches in the named sections, in that order, at most ``cap`` bytes each."""
    for name in names:
        section = elf.section(name)
        if section is None or section.type == SHT_NOBITS:
            continue
        yield from iter_matches(elf.read, pattern, section.offset, min(section.size, cap))


def _section_match(
    elf: ElfFile, names: tuple[str, ...], pattern: re.Pattern[bytes]
) -> re.Match[bytes] | None:
    return next(_section_matches(elf, names, pattern), None)


def quarkus(elf: ElfFile) -> tuple[str, str | None] | None:
    """Runtime Quarkus when the image has Quarkus' strings; the version marker wins over
    ``quarkus.native`` config names met earlier in the image."""
    found = False
    for hit in _section_matches(elf, (*_PROPERTY_SECTIONS, ".svm_heap"), _QUARKUS, HEAP_CAP):
        if hit.group(1):
            return ("Quarkus", _decode(hit))
        found = True
    return ("Quarkus", None) if found else None


def detect(view: ProcessView) -> Detection | None:
    """Kind ``GraalVM`` for a native image; its VM version and Quarkus when present."""
    try:
        elf = ElfFile(view.read_exe, max_read=HEAP_CAP + (8 << 20))
        if elf.section(".svm_heap") is None:
            return None
        vm = _decode(_section_match(elf, _PROPERTY_SECTIONS, _VM))
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError):
        return None
    found = Detection(kind=KIND)
    if vm:
        found.extra["graalvmVM"] = vm
        vendor = implementer(vm)
        if vendor:
            found.extra["graalvmImplementer"] = vendor
    try:
        java = _section_match(elf, _PROPERTY_SECTIONS, _JAVA)
        app = quarkus(elf)
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError) as exc:
        found.extra["graalvmError"] = f"native image: {exc}"
        return found
    if java:
        found.extra["javaVersion"] = _decode(java)
    if app:
        found.runtimes.append(app)
    return found
