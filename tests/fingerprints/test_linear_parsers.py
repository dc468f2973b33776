"""Property tests: every parser of container files costs time linear in its input.

A container writes the files and binaries these parsers read, so a parser whose cost
grows faster than its input (a regex that backtracks across lines, a string grown one
piece at a time, unbounded recursion) is a way to freeze fingerprinting: a Gemfile.lock
of repeated ``"    a (\\n"`` took 28 s at 256 KiB before its parser was rewritten.

Each case builds its input by repeating a unit that hypothesis assembles from the
tokens that matter to that parser (the known attacks are explicit examples), parses it
at one size and at eight times that size, and compares the CPU time of the two: linear
means about 8×; the check allows 3× that plus a small floor for timer noise, where a
quadratic parser needs 64×. CPU time of this thread, best of several runs; never an
absolute bound on wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fingerprints.detectors import (
    dotnet,
    erlang,
    graalvm,
    java,
    javaapps,
    node,
    os_release,
    perl,
    php,
    python,
    ruby,
    rust,
)
from fingerprints.detectors.golang import (
    GoInfo,
    detect_go,
    go_unquote_prefix,
    parse_modinfo,
    parse_version,
)
from fingerprints.reading import evidence, jar, processes
from fingerprints.reading.elf import bytes_reader
from tests.support.memroot import MemoryRoot, memory_view
from tests.support.synth_elf import PF_R, Elf, Load, Sec

GROWTH = 8
SLACK = 3.0
FLOOR = 0.004
"""CPU seconds of slack for the timer and the allocator (a quadratic parser at these
sizes costs seconds, not milliseconds)."""
LINEAR = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Case:
    """One parser: ``run`` parses an input of the case's type, built to ``size`` bytes."""

    name: str
    run: Callable[[str], object]
    tokens: tuple[str, ...]
    size: int = 16 << 10
    prefix: str = ""


def cpu(run: Callable[[str], object], text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        run(text)
        best = min(best, time.thread_time() - t0)
    return best


def build(case: Case, unit: str, size: int) -> str:
    body = unit * (size // len(unit) + 1)
    return (case.prefix + body)[:size]


def assert_linear(case: Case, unit: str) -> None:
    small, big = build(case, unit, case.size), build(case, unit, GROWTH * case.size)
    for repeat in (3, 7):  # a second, longer look before calling noise a failure
        t_small, t_big = cpu(case.run, small, repeat), cpu(case.run, big, repeat)
        if t_big <= GROWTH * SLACK * t_small + FLOOR:
            return
    raise AssertionError(
        f"{case.name}: {t_big * 1e3:.1f} ms at {len(big)} B against "
        f"{t_small * 1e3:.2f} ms at {len(small)} B (unit {unit!r})"
    )


def latin(text: str) -> bytes:
    return text.encode("latin-1", "replace")


# --- text parsers called directly -----------------------------------------------------

PROPERTIES = ("=", '"', "'", "\\", "\n", "#", " ", "\t", "ID", "a", "1", "\r", "!")
JSON = ("[", "]", "{", "}", '"', ":", ",", "1", " ", "\\", "\n", "null", "-")


def _unquote(text: str) -> object:
    try:
        return go_unquote_prefix(text)
    except ValueError:
        return None


def _modinfo(text: str) -> object:
    info = GoInfo(version="go1")
    parse_modinfo(text, info)
    return info


def _argv(parse: Callable[[list[str]], object], text: str) -> object:
    return parse(["/usr/bin/java", *text.split(" ")])


def _maps(text: str) -> object:
    return processes.mapped_files(latin(text), "/run/root")


DIRECT = [
    Case(
        "Gemfile.lock",
        ruby.gemfile_frameworks,
        ("    ", "a", " (", ")", "\n", "DEPENDENCIES\n", "  ", "rails", "!", "1.2", "\n\n"),
    ),
    Case(
        "python imports",
        python.imported_modules,
        ("\n", " ", "\t", "import", "from", "flask", ".", "x", "\r", "\f"),
    ),
    Case("JSON document", evidence.parse_json, JSON),
    Case(
        "composer installed.json",
        php.composer_frameworks,
        (*JSON, '"packages"', '"name"', '"laravel/framework"', '"version"', '"v"'),
    ),
    Case(
        "jar manifest",
        jar.parse_manifest,
        ("\n", " ", "A", ":", "\r", "x", "\r\n"),
        prefix="K: v\n",
    ),
    Case("os-release", os_release.parse_os_release, PROPERTIES),
    Case("properties", evidence.parse_properties, PROPERTIES),
    Case(
        "Go modinfo",
        _modinfo,
        ("path", "mod", "dep", "=>", "build", "\t", "\n", '"', "`", "\\", "=", "x"),
    ),
    Case(
        "Go version",
        lambda text: parse_version(latin(text)),
        ("(", ")", " ", "1", "go1.2", "X:", "-", "a", "((", "\t"),
    ),
    Case("Go string literal", _unquote, ("\\", "x", "u", '"', "a", "0", "`", "n"), prefix='"'),
    Case(
        "environ",
        lambda text: processes.parse_environ(latin(text)),
        ("\0", "=", "a", "PATH", "\xff"),
    ),
    Case("maps", _maps, ("\n", " ", "/", "-", "0", "a", "/run/root", "(deleted)")),
    Case(
        "java command line",
        partial(_argv, javaapps.parse_command),
        ("-jar", "-cp", "-Dx=y", "a:b", "--module", "-p", "x", "", " "),
    ),
    Case(
        "node command line",
        partial(_argv, node.main_script),
        ("-r", "--require", "-e", "--", "x", "-", " "),
    ),
]


@pytest.mark.parametrize("case", DIRECT, ids=lambda c: c.name)
@LINEAR
@given(unit=st.data())
def test_text_parsers_are_linear(case: Case, unit: st.DataObject) -> None:
    assert_linear(case, _unit(unit, case))


def _unit(data: st.DataObject, case: Case) -> str:
    parts = data.draw(st.lists(st.sampled_from(case.tokens), min_size=1, max_size=12))
    return "".join(parts) or " "


@pytest.mark.parametrize(
    "case,unit",
    [
        (DIRECT[0], "    a (\n"),  # the Gemfile.lock attack (issue 8)
        (DIRECT[1], "\n"),  # 64 KiB of newlines in a Python script (issue 8)
        (DIRECT[1], " \n"),
        (DIRECT[2], "["),  # nested package.json: a RecursionError before (issue 8)
        (DIRECT[3], "["),
        (DIRECT[4], "\n x"),
        (DIRECT[8], "("),
        (DIRECT[8], "( "),
    ],
    ids=lambda v: v.name if isinstance(v, Case) else repr(v),
)
def test_known_attacks_are_linear(case: Case, unit: str) -> None:
    assert_linear(case, unit)


def test_nested_json_is_not_a_crash() -> None:
    assert evidence.parse_json("[" * 100_000) is None
    assert php.composer_frameworks('{"packages": ' + "[" * 100_000) == []


# --- detectors over container files they read by path ---------------------------------


def _os(path: str, text: str) -> object:
    return os_release.detect_os(MemoryRoot({path: latin(text)}))


def _detect(
    detector: Callable[..., object],
    path: str,
    argv: list[str],
    exe: str,
    cwd: str = "/app",
    maps: list[str] | None = None,
) -> Callable[[str], object]:
    def run(text: str) -> object:
        return detector(memory_view({path: latin(text)}, argv, exe, cwd=cwd, maps=maps))

    return run


def _jboss(text: str) -> object:
    return javaapps.jboss_product(MemoryRoot({"/opt/jboss/version.txt": latin(text)}), "/opt/jboss")


SITE = "/usr/local/lib/python3.11/site-packages"
FILES = [
    *(
        Case(f"OS from {path}", partial(_os, path), tokens, size=8 << 10)
        for path, tokens in (
            ("/etc/os-release", PROPERTIES),
            ("/etc/alpine-release", ("\n", " ", "3", ".", "x", "\0", "=")),
            ("/etc/redhat-release", (" release ", "1", ".", "\n", " ", "Red", "(", "a")),
            ("/etc/lsb-release", (*PROPERTIES, "DISTRIB_ID", "DISTRIB_RELEASE")),
            ("/etc/debian_version", ("1", "2", ".", "\n", " ", "/", "sid")),
            (
                "/var/lib/dpkg/status.d/base",
                ("Package:", " ", "\n", "base-files", "Version:", "1", "\t", "x"),
            ),
        )
    ),
    Case(
        "Python patchlevel.h",
        _detect(
            python.detect,
            "/usr/include/python3.11/patchlevel.h",
            ["/usr/bin/python3.11"],
            "/usr/bin/python3.11",
        ),
        ("#define PY_VERSION", " ", '"', "\n", "3", ".", "\t"),
        size=8 << 10,
    ),
    Case(
        "Python METADATA",
        _detect(
            python.detect,
            f"{SITE}/flask-1.0.dist-info/METADATA",
            ["/usr/bin/python3.11", "-m", "flask"],
            "/usr/bin/python3.11",
        ),
        ("Version:", " ", "\n", "1", "x", "\t"),
        size=8 << 10,
    ),
    Case(
        "Python entry script",
        _detect(python.detect, "/app/app.py", ["/usr/bin/python3", "app.py"], "/usr/bin/python3"),
        ("\n", " ", "import", "flask", "\t"),
        size=8 << 10,
    ),
    Case(
        "Gemfile.lock in the app dir",
        _detect(ruby.detect, "/app/Gemfile.lock", ["/usr/bin/ruby"], "/usr/bin/ruby"),
        ("    ", "a", " (", ")", "\n", "DEPENDENCIES\n", "  ", "rails"),
        size=64 << 10,
    ),
    Case(
        "WordPress version.php",
        _detect(php.detect, "/app/wp-includes/version.php", ["/usr/bin/php"], "/usr/bin/php"),
        ("$wp_version", " ", "=", "'", "x", "\n"),
        size=8 << 10,
    ),
    Case(
        "package.json",
        _detect(node.detect, "/app/package.json", ["/usr/bin/node", "app.js"], "/usr/bin/node"),
        JSON,
        size=64 << 10,
    ),
    Case(
        "node_version.h",
        _detect(
            node.detect, "/usr/include/node/node_version.h", ["/usr/bin/node"], "/usr/bin/node"
        ),
        ("#define NODE_MAJOR_VERSION ", "#define NODE_", "1", "\n", " "),
        size=8 << 10,
    ),
    Case(
        "Elixir app file",
        _detect(
            erlang.detect,
            "/elixir/ebin/elixir.app",
            ["beam.smp", "-pa", "/elixir/ebin", "elixir"],
            "/usr/lib/erlang/erts-13.1/bin/beam.smp",
        ),
        ("{", "vsn", ",", '"', " ", "}", "\n", "1"),
        size=8 << 10,
    ),
    Case(
        "OTP_VERSION",
        _detect(
            erlang.detect,
            "/usr/lib/erlang/releases/25/OTP_VERSION",
            ["beam.smp"],
            "/usr/lib/erlang/erts-13.1/bin/beam.smp",
        ),
        ("1", ".", "\n", " ", "**", "x"),
        size=8 << 10,
    ),
    Case("JBoss version.txt", _jboss, ("- Version", " ", "\n", "x", "-"), size=8 << 10),
    Case(
        "Open Liberty properties",
        _detect(
            java.detect,
            "/opt/wlp/lib/versions/openliberty.properties",
            ["java", "-jar", "/opt/wlp/bin/tools/ws-server.jar"],
            "/opt/jdk/bin/java",
            maps=["/opt/jdk/lib/server/libjvm.so"],
        ),
        PROPERTIES,
        size=8 << 10,
    ),
    Case(
        "Java release",
        _detect(
            java.detect,
            "/opt/jdk/release",
            ["java", "Main"],
            "/opt/jdk/bin/java",
            maps=["/opt/jdk/lib/server/libjvm.so"],
        ),
        (*PROPERTIES, "JAVA_VERSION", "IMPLEMENTOR"),
        size=8 << 10,
    ),
]


@pytest.mark.parametrize("case", FILES, ids=lambda c: c.name)
@LINEAR
@given(unit=st.data())
def test_detectors_read_files_in_linear_time(case: Case, unit: st.DataObject) -> None:
    assert_linear(case, _unit(unit, case))


@pytest.mark.parametrize(
    "case,unit",
    [(FILES[6], "\n"), (FILES[8], "    a (\n"), (FILES[10], "[")],
    ids=lambda v: v.name if isinstance(v, Case) else repr(v),
)
def test_known_attacks_through_the_detectors(case: Case, unit: str) -> None:
    assert_linear(case, unit)


def test_nested_package_json_keeps_the_nodejs_kind() -> None:
    """A package.json of nested ``[`` used to end the detector in a RecursionError,
    losing the kind; now it is just not a package.json."""
    view = memory_view(
        {"/app/package.json": b"[" * 200_000}, ["/usr/bin/node", "app.js"], "/usr/bin/node"
    )
    found = node.detect(view)
    assert found is not None and (found.kind, found.runtimes) == ("Node.js", [])


# --- binaries: version strings scanned out of executables and libraries -----------------


def _binary(
    detector: Callable[..., object], exe: str, maps: list[str] | None = None
) -> Callable[[str], object]:
    def run(text: str) -> object:
        data = latin(text)
        mapped = dict.fromkeys(maps, data) if maps else None
        return detector(memory_view({}, [exe], exe, maps=maps, exe_bytes=data, mapped=mapped))

    return run


def _elf(section: str, extra: tuple[tuple[str, bytes], ...] = ()) -> Callable[[bytes], bytes]:
    """An ELF whose section ``section`` holds the data (plus fixed extra sections)."""

    def make(data: bytes) -> bytes:
        blobs = [(section, data), *extra]
        e = Elf()
        e.loads = [Load(0x400000 + i * 0x1000000, blob, PF_R) for i, (_, blob) in enumerate(blobs)]
        e.sections = [Sec(name, i, 0, len(blob)) for i, (name, blob) in enumerate(blobs)]
        return e.build()

    return make


PCLNTAB = bytes.fromhex("fbffffff00000108") + bytes(8)


def _elf_detectors(make: Callable[[bytes], bytes]) -> Callable[[str], object]:
    def run(text: str) -> object:
        view = memory_view({}, ["/app"], "/app", exe_bytes=make(latin(text)))
        return [detect_go(view), rust.detect(view), graalvm.detect(view)]

    return run


BINARIES = [
    Case(
        "Ruby banner",
        _binary(ruby.detect, "/usr/bin/ruby"),
        ("ruby ", "1", ".", "p", " (", "2024-01-01", "\0"),
    ),
    Case(
        "PHP version",
        _binary(php.detect, "/usr/sbin/php-fpm8.2"),
        ("X-Powered-By: PHP/", "8.2.1", "\0", "a"),
    ),
    Case("Perl version", _binary(perl.detect, "/usr/bin/perl"), ("v5.", "36", ".", "\0")),
    Case(
        "Python version",
        _binary(python.detect, "/usr/bin/python3.11"),
        ("3.11.", "2", "\0", "/", "-", "+", "rc1"),
    ),
    Case(
        "PyPy version",
        _binary(python.detect, "/usr/bin/pypy3"),
        ("[PyPy ", "7.3.1", "\0", " (", ")", "3.9.1"),
    ),
    Case(
        "Node.js version",
        _binary(node.detect, "/usr/bin/node"),
        ("node.js/v", "1", ".", "\0", "/download/release/v", "/node-v"),
    ),
    Case(
        "libjvm banner",
        _binary(java.detect, "/opt/jdk/bin/java", ["/opt/jdk/lib/server/libjvm.so"]),
        (" VM (", ")", " for ", "linux-amd64", " JRE (", "17", "Debian", "\0"),
    ),
    Case(
        "CoreLib version",
        _binary(
            dotnet.detect,
            "/app/app",
            ["/app/libcoreclr.so", "/app/System.Private.CoreLib.dll"],
        ),
        ("8.0.4", "-", "+", "0123456789abcdef", ".", "a"),
    ),
    Case(
        "Go and Rust strings in .rodata",
        _elf_detectors(_elf(".rodata", ((".gopclntab", PCLNTAB),))),
        ("go1.", "2", ".", "rc", "/rustc-", "1.2.3", "/library/core/", "\0", "a"),
    ),
    Case(
        "rustc in .comment",
        _elf_detectors(_elf(".comment")),
        ("rustc version ", "1", ".", "\0", " "),
    ),
    Case(
        "native image heap",
        _elf_detectors(_elf(".svm_heap", ((".rodata", b"com.oracle.svm.core.VM=x\0"),))),
        ("quarkus", "_analytics__quarkus.version=", "3.15", ".native", "\0", "com.oracle.svm"),
    ),
]


@pytest.mark.parametrize("case", BINARIES, ids=lambda c: c.name)
@LINEAR
@given(unit=st.data())
@example(unit=None)
def test_binary_scans_are_linear(case: Case, unit: st.DataObject | None) -> None:
    assert_linear(case, _unit(unit, case) if unit is not None else "\0")


def test_memory_root_reads_what_it_holds() -> None:
    """The test root itself: what the cases above rely on."""
    root = MemoryRoot({"/a/b/c.txt": b"x", "/a/d": b"y"})
    assert root.listdir("/a") == ["b", "d"] and root.is_dir("/a/b") and root.is_file("/a/d")
    assert root.read_text("/a/b/c.txt") == "x" and root.size("/a/d") == 1
    view = memory_view({}, ["/x"], "/x", mapped={"/lib.so": b"abc"})
    reader = view.read_mapped("/lib.so")
    assert reader is not None and reader(1, 5) == b"bc" and view.maps == ["/lib.so"]
    assert bytes_reader(b"abc")(0, 2) == b"ab"
