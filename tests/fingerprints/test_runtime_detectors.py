"""Language detectors on files laid out like real installs, and on hostile containers.

Where a real artefact is cheap it is used (the dotnetcore2 wheel from PyPI carries a real
.NET Core runtime); otherwise the files follow the runtimes' own layouts (docs/fingerprints.md:
PyPy banner strings, OTP release dirs, composer installed.json). Hostile inputs must yield
a kind without a version, never a crash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fingerprints.base import ProcessView
from fingerprints.detectors import dotnet, erlang, graalvm, java, node, php, python, ruby
from fingerprints.reading.elf import bytes_reader
from fingerprints.reading.rootfs import Budget, BudgetExceeded, ConfinedRoot


def _view(
    root: Path,
    exe: str,
    argv: list[str] | None = None,
    maps: list[str] | None = None,
    exe_bytes: bytes = b"",
    cwd: str = "/",
    budget: Budget | None = None,
) -> ProcessView:
    return ProcessView(
        pid=1,
        comm=os.path.basename(exe)[:15],
        argv=argv or [exe],
        environ={},
        cwd=cwd,
        exe=exe,
        maps=maps or [],
        root=ConfinedRoot(str(root), budget),
        read_exe=bytes_reader(exe_bytes),
    )


# --- .NET on the real runtime shipped in the dotnetcore2 wheel ---


def _dotnet_dir() -> Path:
    spec = pytest.importorskip("dotnetcore2", reason="PyPI wheel dotnetcore2 not installed")
    return Path(spec.__file__).parent / "bin"


def _list_runtimes(bin_dir: Path) -> str:
    env = {**os.environ, "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1"}
    out = subprocess.run(
        [str(bin_dir / "dotnet"), "--list-runtimes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Microsoft.NETCore.App "))
    return line.split()[1]


def test_dotnet_framework_dependent_version_is_the_shared_dir() -> None:
    bin_dir = _dotnet_dir()
    expected = _list_runtimes(bin_dir)
    shared = bin_dir / "shared/Microsoft.NETCore.App" / expected
    maps = [str(bin_dir / "dotnet"), str(shared / "libcoreclr.so")]
    found = dotnet.detect(_view(Path("/"), str(bin_dir / "dotnet"), maps=maps))
    assert found is not None and (found.kind, found.kind_version) == (".NET", expected)


def test_dotnet_self_contained_version_from_corelib(tmp_path: Path) -> None:
    bin_dir = _dotnet_dir()
    expected = _list_runtimes(bin_dir)
    shared = bin_dir / "shared/Microsoft.NETCore.App" / expected
    app = tmp_path / "app"
    app.mkdir()
    for name in ("libcoreclr.so", "System.Private.CoreLib.dll"):
        shutil.copyfile(shared / name, app / name)
    maps = ["/app/myapp", "/app/libcoreclr.so", "/app/System.Private.CoreLib.dll"]
    found = dotnet.detect(_view(tmp_path, "/app/myapp", maps=maps))
    assert found is not None and (found.kind, found.kind_version) == (".NET", expected)


def test_aspnet_core_and_mono() -> None:
    maps = [
        "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.4/libcoreclr.so",
        "/usr/share/dotnet/shared/Microsoft.AspNetCore.App/8.0.4/Microsoft.AspNetCore.dll",
    ]
    found = dotnet.detect(_view(Path("/"), "/usr/share/dotnet/dotnet", maps=maps))
    assert found is not None and found.runtimes == [("ASP.NET Core", "8.0.4")]
    mono = dotnet.detect(_view(Path("/"), "/usr/bin/mono-sgen"))
    assert mono is not None and mono.kind == "Mono"
    assert dotnet.release_version("8.0.0-preview.7.23375.6") == "8.0.0-preview.7.23375.6"


# --- PyPy (strings as in Debian's libpypy3.9-c.so, per the reference notes) ---


def test_pypy_is_python_with_pypy_implementer(tmp_path: Path) -> None:
    lib = tmp_path / "usr/lib/pypy3.9/bin/libpypy3.9-c.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(
        b"\x00" * 4096
        + b"\x003.9.16 (7.3.11+dfsg-2+deb12u3, Dec 30 2024, 22:36:23)\x00"
        + b"[PyPy 7.3.11 with GCC 12.2.0]\x00"
    )
    view = _view(
        tmp_path, "/usr/lib/pypy3.9/bin/pypy3.9", maps=["/usr/lib/pypy3.9/bin/libpypy3.9-c.so"]
    )
    found = python.detect(view)
    assert found is not None
    assert (found.kind, found.kind_version, found.kind_implementer) == (
        "Python",
        "Python 3.9.16",
        "PyPy",
    )
    assert found.extra["pypyVersion"] == "7.3.11"


def test_python2_reports_its_version(tmp_path: Path) -> None:
    """Python 2 gets ``Python 2.7.18`` (what ``python2 --version`` prints on stderr), not
    insights-runtime-extractor's version-less kind: see fingerprints/detectors/python.py. Debian 12
    ships no Python 2 and PyPI no Python 2 runtime, so the binary's strings are laid out
    as in python2.7 (PY_VERSION is a standalone NUL-ended string next to other 2.7 text)."""
    exe = b"\x7fELF" + b"\x00" * 4096 + b"2.7\x00/usr/lib/python2.7\x002.7.18\x00%s\x00"
    view = _view(tmp_path, "/usr/local/bin/python2.7", exe_bytes=exe)
    found = python.detect(view)
    assert found is not None
    assert (found.kind, found.kind_version) == ("Python", "Python 2.7.18")
    view = _view(tmp_path, "/usr/bin/python", exe_bytes=exe)
    found = python.detect(view)
    assert found is not None and found.kind_version == "Python 2.7.18"


def test_python_venv_version_from_pyvenv_cfg(tmp_path: Path) -> None:
    venv = tmp_path / "app/.venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    view = _view(
        tmp_path, "/usr/bin/python3.11", argv=["/app/.venv/bin/python", "-m", "gunicorn", "app:app"]
    )
    site = venv / "lib/python3.11/site-packages/gunicorn-22.0.0.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Name: gunicorn\nVersion: 22.0.0\n")
    found = python.detect(view)
    assert found is not None
    assert found.kind_version == "Python 3.11.2"
    assert found.runtimes == [("Gunicorn", "22.0.0")]


# --- GraalVM native images ---


@pytest.mark.parametrize(
    ("vm", "implementer"),
    [
        ("GraalVM CE 25+37.1", "GraalVM CE"),
        ("Mandrel-23.1.4.0-Final", "Mandrel"),
        ("Liberica-NIK-25.0.0-1", "Liberica NIK"),
        ("GraalVM 20.2.0 Java 11 EE", "Oracle GraalVM"),
        ("GraalVM 22.0.0.2 Java 11 CE", "GraalVM CE"),
    ],
)
def test_graalvm_implementer(vm: str, implementer: str) -> None:
    assert graalvm.implementer(vm) == implementer


def test_non_elf_executable_is_not_graalvm(tmp_path: Path) -> None:
    assert (
        graalvm.detect(_view(tmp_path, "/app/run.sh", exe_bytes=b"#!/bin/sh\nexec app\n")) is None
    )


# --- Erlang / Elixir (Debian layout: /usr/lib/erlang/{erts-V,releases/N/OTP_VERSION}) ---


def test_erlang_release_tree_and_elixir(tmp_path: Path) -> None:
    otp = tmp_path / "usr/lib/erlang"
    (otp / "erts-14.2.5/bin").mkdir(parents=True)
    (otp / "releases/26").mkdir(parents=True)
    (otp / "releases/26/OTP_VERSION").write_text("26.2.5.3\n")
    (otp / "releases/start_erl.data").write_text("14.2.5 26\n")
    ebin = tmp_path / "usr/lib/elixir/lib/elixir/ebin"
    ebin.mkdir(parents=True)
    (ebin / "elixir.app").write_text(
        '{application,elixir,[{description,"elixir"},{vsn,"1.16.3"}]}.\n'
    )
    argv = [
        "/usr/lib/erlang/erts-14.2.5/bin/beam.smp", "--", "-root", "/usr/lib/erlang",
        "--", "-pa", "/usr/lib/elixir/lib/elixir/ebin", "-noshell", "-s", "elixir", "start_cli",
    ]  # fmt: skip
    found = erlang.detect(_view(tmp_path, argv[0], argv=argv))
    assert found is not None
    assert (found.kind, found.kind_version, found.extra["ertsVersion"]) == (
        "Erlang",
        "26.2.5.3",
        "14.2.5",
    )
    assert found.runtimes == [("Elixir", "1.16.3")]


# --- PHP and Ruby app frameworks ---


def test_php_composer_and_wordpress(tmp_path: Path) -> None:
    app = tmp_path / "var/www/html"
    (app / "vendor/composer").mkdir(parents=True)
    (app / "vendor/composer/installed.json").write_text(
        '{"packages": [{"name": "laravel/framework", "version": "v11.9.2"},'
        ' {"name": "monolog/monolog", "version": "3.6.0"}]}'
    )
    (app / "wp-includes").mkdir()
    (app / "wp-includes/version.php").write_text("<?php\n$wp_version = '6.5.3';\n")
    found = php.detect(_view(tmp_path, "/usr/local/sbin/php-fpm", cwd="/var/www/html"))
    assert found is not None
    assert found.runtimes == [("Laravel", "11.9.2"), ("WordPress", "6.5.3")]


def test_gemfile_lock_reports_only_direct_dependencies() -> None:
    lock = (
        "GEM\n  specs:\n    rails (7.1.3)\n      actionpack (= 7.1.3)\n    puma (6.4.2)\n\n"
        "DEPENDENCIES\n  rails (~> 7.1)\n\nBUNDLED WITH\n   2.5.3\n"
    )
    assert ruby.gemfile_frameworks(lock) == [("Ruby on Rails", "7.1.3")]


def test_node_main_script() -> None:
    assert node.main_script(["node", "--require", "x", "dist/server.js", "a"]) == "dist/server.js"
    assert node.main_script(["node", "-e", "1"]) is None


# --- hostile containers: a kind, no version, no crash, no escape ---


def test_hostile_java_home(tmp_path: Path) -> None:
    home = tmp_path / "jdk"
    (home / "lib/server").mkdir(parents=True)
    (home / "lib/server/libjvm.so").write_bytes(b"\x7fELF" + os.urandom(4096))
    outside = tmp_path.parent / f"{tmp_path.name}-host-release"
    outside.write_text('JAVA_VERSION="99.0.0"\nIMPLEMENTOR="host"\n')
    (home / "release").symlink_to(outside)  # absolute link: must not reach the host file
    view = _view(tmp_path, "/jdk/bin/java", maps=["/jdk/lib/server/libjvm.so"])
    found = java.detect(view)
    outside.unlink()
    assert found is not None and found.kind == "Java"
    assert found.kind_version is None and found.kind_implementer is None


def test_release_fifo_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "jdk/lib/server").mkdir(parents=True)
    os.mkfifo(tmp_path / "jdk/release")
    found = java.detect(_view(tmp_path, "/jdk/bin/java", maps=["/jdk/lib/server/libjvm.so"]))
    assert found is not None and found.kind_version is None


def test_garbage_node_binary_gives_kind_without_version(tmp_path: Path) -> None:
    found = node.detect(_view(tmp_path, "/usr/local/bin/node", exe_bytes=os.urandom(1 << 16)))
    assert found is not None and (found.kind, found.kind_version) == ("Node.js", None)


def test_budget_overrun_propagates_to_the_engine(tmp_path: Path) -> None:
    lib = tmp_path / "usr/lib/libruby-3.3.so.3.3.0"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x00" * (4 << 20))
    view = _view(
        tmp_path,
        "/usr/bin/ruby",
        maps=["/usr/lib/libruby-3.3.so.3.3.0"],
        budget=Budget(max_bytes_total=1 << 20),
    )
    with pytest.raises(BudgetExceeded):
        ruby.detect(view)
