"""Go: toolchain version and main module of a binary, read from its build info.

The Go linker embeds a ``\\xff Go buildinf:`` blob (since Go 1.13): inline
varint-prefixed strings since 1.18, pointers into the data segment before. Binaries
without it (some release builds) still carry a pclntab whose magic dates the toolchain,
and often the ``runtime.buildVersion`` string in ``.rodata``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from fingerprints.base import Detection, FingerprintError, ProcessView, Reader
from fingerprints.reading.elf import PF_W, PF_X, PT_LOAD, ElfError, ElfFile

MAGIC = b"\xff Go buildinf:"
HEADER_SIZE = 32
CHUNK = 1 << 20
MAX_SCAN = 32 << 20
MAX_VERSION = 1024
MAX_MODINFO = 16 << 20
MAX_RODATA_SCAN = 16 << 20
MAX_PCLNTAB_SCAN = 16 << 20

PCLNTAB_RANGES = {
    0xFFFFFFFB: "go1.2-go1.15",
    0xFFFFFFFA: "go1.16-go1.17",
    0xFFFFFFF0: "go1.18-go1.19",
    0xFFFFFFF1: ">=go1.20",
}
_PCLNTAB_RE = re.compile(
    rb"(?:[\xf0\xf1\xfa\xfb]\xff\xff\xff|\xff\xff\xff[\xf0\xf1\xfa\xfb])\x00\x00[\x01\x02\x04][\x04\x08]"
)
_VERSION_RE = re.compile(
    rb"(?<![0-9A-Za-z._/-])(go1\.\d+(?:\.\d+)?(?:(?:rc|beta)\d+)?)(?![0-9A-Za-z.])"
)
_EXPERIMENT_RE = re.compile(r"(?:^|[\s-])X:(\S+)")
_GO_SECTIONS = (".gopclntab", ".go.buildid", ".note.go.buildid", ".go.fipsinfo", ".go.module")


class GoBuildInfoError(FingerprintError):
    """A Go build-info blob (or the binary around it) is malformed."""


@dataclass
class GoInfo:
    """What a Go binary says about itself; ``confidence`` says how it was learnt."""

    version: str | None
    version_raw: str | None = None
    vendor: str | None = None
    experiment: str | None = None
    path: str | None = None
    main_module: str | None = None
    main_version: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    deps: list[tuple[str, str]] = field(default_factory=list)
    format: str = "none"
    confidence: str = "exact"
    error: str | None = None
    """Why a build-info blob that was found could not be used (the rest is fallback)."""


def read_go_info(read: Reader, max_read: int = 64 << 20) -> GoInfo | None:
    """Go facts of the ELF behind ``read``, None when it is not a Go binary."""
    try:
        elf = ElfFile(read, max_read=max_read)
        try:
            info = _from_buildinfo(elf)
        except (GoBuildInfoError, ElfError) as bad:
            # a corrupt (or planted) blob: a real Go binary still has its pclntab
            info = _fallback(elf)
            if info is None:
                raise GoBuildInfoError(str(bad)) from bad
            info.error = f"build info unusable: {bad}"
            return info
        return info if info is not None else _fallback(elf)
    except ElfError as e:
        raise GoBuildInfoError(str(e)) from e


def detect_go(view: ProcessView) -> Detection | None:
    """Detector: the process's own executable is a Go binary.

    ``kindVersion`` is the version exactly as the binary carries it, as
    insights-runtime-extractor reports it (``go1.21.11 (Red Hat 1.21.11-1.el9_4)
    X:strictfipsruntime`` from Red Hat's toolchain); its parts are under fields of
    their own: ``goVersion`` (``go1.21.11``), ``goVendor``, ``goExperiment``."""
    if view.read_exe(0, 4) != b"\x7fELF":
        return None
    info = read_go_info(view.read_exe)
    if info is None:
        return None
    extra: dict[str, object] = {"goVersionConfidence": info.confidence}
    for key, value in (
        ("goVersion", info.version),
        ("goVendor", info.vendor),
        ("goExperiment", info.experiment),
        ("goMainPath", info.path),
        ("goMainModule", info.main_module),
        ("goMainModuleVersion", info.main_version),
        ("vcsRevision", info.settings.get("vcs.revision")),
        ("vcsModified", info.settings.get("vcs.modified")),
        ("goBuildInfoError", info.error),
    ):
        if value:
            extra[key] = value
    return Detection(kind="Golang", kind_version=info.version_raw or info.version, extra=extra)


# --- locating the blob -------------------------------------------------------------


def _ranges(elf: ElfFile) -> Iterator[tuple[int, int, int]]:
    """(vaddr, file offset, file size) where the blob may live, most likely first.

    The ``.go.buildinfo`` section when there is one; else the writable data segment, as
    Go's own reader does, unless a readable section table shows a binary that is not Go
    (so a C/C++ runtime's data segment is not scanned on every process).
    """
    sec = elf.section(".go.buildinfo")
    if sec is not None:
        yield sec.addr, sec.offset, sec.size
        return
    names = {s.name for s in elf.sections} - {""}
    if names and not names & set(_GO_SECTIONS):
        return
    for seg in elf.segments:
        if seg.type == PT_LOAD and seg.flags & PF_W and not seg.flags & PF_X:
            yield seg.vaddr, seg.offset, seg.filesz


def _find_magic(elf: ElfFile) -> tuple[int, bytes] | None:
    """(vaddr, 32-byte header) of the first 16-aligned magic, scanning in chunks."""
    scanned = 0
    for vaddr, offset, size in _ranges(elf):
        skip = -vaddr % 16
        pos = skip
        while pos + HEADER_SIZE <= size and scanned < MAX_SCAN:
            n = min(CHUNK, size - pos)
            chunk = elf.read(offset + pos, n)
            scanned += n
            i = chunk.find(MAGIC)
            while i >= 0:
                if (vaddr + pos + i) % 16 == 0 and pos + i + HEADER_SIZE <= size:
                    head = chunk[i : i + HEADER_SIZE]
                    if len(head) < HEADER_SIZE:
                        head = elf.read(offset + pos + i, HEADER_SIZE)
                    return vaddr + pos + i, head
                i = chunk.find(MAGIC, i + 1)
            pos += n
    return None


def _from_buildinfo(elf: ElfFile) -> GoInfo | None:
    found = _find_magic(elf)
    if found is None:
        return None
    vaddr, head = found
    flags = head[15]
    if flags & 2:
        version, mod = _inline_strings(elf, vaddr + HEADER_SIZE)
        fmt = "inline"
    else:
        version, mod = _pointer_strings(elf, vaddr, head)
        fmt = "pointer"
    if not version:
        return None
    if not version.startswith((b"go", b"devel")):
        raise GoBuildInfoError("build info version is not a Go version")
    info = parse_version(version)
    info.format = fmt
    parse_modinfo(strip_sentinels(mod), info)
    return info


def _uvarint(data: bytes) -> tuple[int, int]:
    """(value, bytes used) of a Go uvarint at the start of ``data``."""
    value = 0
    for i, b in enumerate(data[:10]):
        value |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            return value, i + 1
    raise GoBuildInfoError("bad uvarint length in build info")


def _inline_strings(elf: ElfFile, vaddr: int) -> tuple[bytes, bytes]:
    out: list[bytes] = []
    for limit in (MAX_VERSION, MAX_MODINFO):
        where = elf.vaddr_to_offset(vaddr)
        if where is None:
            raise GoBuildInfoError("build info runs past its segment")
        offset, available = where
        length, used = _uvarint(elf.read(offset, min(10, available)))
        if length > limit or used + length > available:
            raise GoBuildInfoError(f"build info string of {length} bytes is implausible")
        out.append(elf.read(offset + used, length))
        vaddr += used + length
    return out[0], out[1]


def _pointer_strings(elf: ElfFile, vaddr: int, head: bytes) -> tuple[bytes, bytes]:
    ptr_size = head[14]
    if ptr_size not in (4, 8):
        raise GoBuildInfoError(f"bad pointer size {ptr_size} in build info")
    order = ">" if head[15] & 1 else "<"
    word = order + ("Q" if ptr_size == 8 else "I")
    vers_ptr = struct.unpack_from(word, head, 16)[0]
    mod_ptr = struct.unpack_from(word, head, 16 + ptr_size)[0]
    version = _go_string(elf, word, _pointer(elf, vers_ptr, vaddr + 16), MAX_VERSION)
    mod = _go_string(elf, word, _pointer(elf, mod_ptr, vaddr + 16 + ptr_size), MAX_MODINFO)
    return version, mod


def _pointer(elf: ElfFile, value: int, at: int) -> int:
    """A pointer read at vaddr ``at``; PIE files may hold 0 and keep it in a RELA addend."""
    if value and elf.vaddr_to_offset(value) is not None:
        return value
    addend = elf.rela_addend(at)
    if addend is None:
        raise GoBuildInfoError(f"unresolvable pointer {value:#x} at {at:#x}")
    return addend


def _go_string(elf: ElfFile, word: str, header_vaddr: int, limit: int) -> bytes:
    """The bytes of a Go string header ``{data, len}`` at ``header_vaddr``."""
    size = struct.calcsize(word)
    raw = elf.read_vaddr(header_vaddr, 2 * size)
    data, length = struct.unpack(word + word[1], raw)
    if length == 0:
        return b""
    if length > limit:
        raise GoBuildInfoError(f"Go string of {length} bytes is implausible")
    return elf.read_vaddr(_pointer(elf, data, header_vaddr), length)


# --- fallbacks without build info --------------------------------------------------


def _fallback(elf: ElfFile) -> GoInfo | None:
    """Go without build info: pclntab or Go sections prove it, a symbol or .rodata dates it."""
    magic = _pclntab_magic(elf)
    if magic is None and not any(elf.section(name) for name in _GO_SECTIONS):
        return None
    info = GoInfo(version=None, format="pclntab" if magic else "sections", confidence="unknown")
    if magic is not None:
        info.settings["pclntab"] = PCLNTAB_RANGES[magic]
    exact = _symbol_version(elf)
    if exact is not None:
        info.version, info.version_raw = exact.version, exact.version_raw
        info.vendor, info.experiment = exact.vendor, exact.experiment
        info.confidence, info.format = "exact", "symbol"
        return info
    candidate = _rodata_version(elf)
    if candidate is not None:
        info.version, info.confidence = candidate, "heuristic"
    return info


def _symbol_version(elf: ElfFile) -> GoInfo | None:
    """``runtime.buildVersion`` through the symbol table of an unstripped binary."""
    try:
        sym = elf.symbol("runtime.buildVersion")
        if sym is None:
            return None
        word = elf.endian + ("Q" if elf.is64 else "I")
        raw = _go_string(elf, word, sym.value, MAX_VERSION)
    except (ElfError, GoBuildInfoError):
        return None
    if not raw.startswith((b"go", b"devel")):
        return None
    return parse_version(raw)


def _pclntab_magic(elf: ElfFile) -> int | None:
    sec = elf.section(".gopclntab")
    if sec is not None:
        return _magic_value(elf, elf.read_section(sec, 8))
    if elf.sections:
        return None
    scanned = 0
    for seg in elf.segments:
        if seg.type != PT_LOAD or seg.flags & PF_W:
            continue
        pos = 0
        while pos < seg.filesz and scanned < MAX_PCLNTAB_SCAN:
            chunk = elf.read(seg.offset + pos, min(CHUNK + 8, seg.filesz - pos))
            scanned += len(chunk)
            for m in _PCLNTAB_RE.finditer(chunk):
                value = _magic_value(elf, m.group(0))
                if value is not None:
                    return value
            pos += CHUNK
    return None


def _magic_value(elf: ElfFile, head: bytes) -> int | None:
    """The pclntab magic if ``head`` is a plausible pclntab header, else None."""
    if len(head) < 8 or head[4:6] != b"\x00\x00" or head[6] not in (1, 2, 4):
        return None
    if head[7] not in (4, 8):
        return None
    for order in ("<", ">"):
        value: int = struct.unpack(order + "I", head[:4])[0]
        if value in PCLNTAB_RANGES:
            return value
    return None


def _rodata_version(elf: ElfFile) -> str | None:
    """``runtime.buildVersion``'s text in .rodata, if exactly one candidate is there."""
    sec = elf.section(".rodata")
    if sec is None:
        return None
    data = elf.read_section(sec, MAX_RODATA_SCAN)
    found = {m.group(1).decode() for m in _VERSION_RE.finditer(data)}
    return found.pop() if len(found) == 1 else None


# --- strings -----------------------------------------------------------------------


def parse_version(raw: bytes) -> GoInfo:
    """Split ``go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime`` and friends into
    the toolchain version, its vendor and experiments; ``version_raw`` keeps the whole."""
    text = raw.decode("utf-8", errors="replace")
    core = text.removeprefix("devel ").split(" ", 1)[0].split("-X:", 1)[0]
    experiment = _EXPERIMENT_RE.search(text)
    return GoInfo(
        version=core,
        version_raw=text if text != core else None,
        vendor=_vendor(text),
        experiment=experiment.group(1) if experiment else None,
    )


def _vendor(text: str) -> str | None:
    """The words before the version in the first ``(<vendor> <version…>)`` group.

    One left-to-right scan: a ``(`` inside a group restarts the group there, so no part
    of the text is looked at twice whatever parentheses it holds."""
    start = text.find("(")
    while start >= 0:
        end = text.find(")", start + 1)
        if end < 0:
            return None
        nested = text.rfind("(", start + 1, end)
        if nested >= 0:
            start = nested
            continue
        words = text[start + 1 : end].split()
        for i, word in enumerate(words):
            if i and word[:1].isdigit():
                return " ".join(words[:i])
        start = text.find("(", end + 1)
    return None


def strip_sentinels(mod: bytes) -> str:
    """The modinfo text between its 16-byte sentinels ('' when they are not there)."""
    if len(mod) >= 33 and mod[-17] == 0x0A:
        return mod[16:-16].decode("utf-8", errors="replace")
    return ""


def parse_modinfo(text: str, info: GoInfo) -> None:
    """Fill path, main module and build settings from ``runtime/debug.BuildInfo`` text."""
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "path":
            info.path = rest
        elif kind == "mod" and len(fields) >= 2:
            info.main_module, info.main_version = fields[0], fields[1]
        elif kind == "dep" and len(fields) >= 2:
            info.deps.append((fields[0], fields[1]))
        elif kind == "=>" and len(fields) >= 2 and info.deps:
            info.deps[-1] = (fields[0], fields[1])
        elif kind == "build":
            setting = _parse_setting(rest)
            if setting is not None:
                info.settings[setting[0]] = setting[1]


def _parse_setting(text: str) -> tuple[str, str] | None:
    """``key=value`` where either side may be Go-quoted."""
    try:
        if text[:1] in ('"', "`"):
            key, used = go_unquote_prefix(text)
            rest = text[used:]
            if not rest.startswith("="):
                return None
            value_text = rest[1:]
        else:
            key, sep, value_text = text.partition("=")
            if not sep:
                return None
        if value_text[:1] in ('"', "`"):
            value, used = go_unquote_prefix(value_text)
        else:
            value = value_text
    except ValueError:
        return None
    return key, value


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def go_unquote_prefix(text: str) -> tuple[str, int]:
    """Decode the Go string literal at the start of ``text``: (value, characters used)."""
    quote = text[0]
    if quote == "`":
        end = text.find("`", 1)
        if end < 0:
            raise ValueError("unterminated raw string")
        return text[1:end], end + 1
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c != "\\":
            out.append(c)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        elif esc.isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"bad escape \\{esc}")
    raise ValueError("unterminated string")
