"""Same values as insights-runtime-extractor: its own e2e expectations, on real processes.

Every case below is one test of that tool's e2e suite, named in the case, whose expected
``ContainerRuntimeInfo`` (listed in docs/insights-runtime-extractor.md, "Its e2e
expectations") is written here as that test writes it and compared with exact equality,
as that test compares it (an extra field fails). Each case runs a
real process in its own mount and PID namespaces (tests/support/namespaced.py) over a
root holding the files that tool's sample image holds where both tools read them: the
image's ``/etc/os-release`` (as the distribution ships it), the JDK's ``release`` file,
the jar manifests. The runtimes are this machine's (Debian's Python, Node.js, OpenJDK,
Tomcat, Go binary). Where that tool takes a value by executing the runtime
(``python3 --version``, ``node --version``: its fpr_kind_executable), the expected value
is what that execution prints here; where it reads a file, the file carries the sample's
value and the expectation is the e2e test's literal value.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extractor.contract import Fingerprint
from fingerprints.engine import Fingerprinter
from tests.fingerprints.test_fingerprint_e2e import bound_root
from tests.support.namespaced import start, stop

pytestmark = pytest.mark.root

# /etc/os-release of the sample images, as those distributions ship it
OS_RELEASE = {
    "ubi10": 'NAME="Red Hat Enterprise Linux"\nVERSION="10.0 (Coughlan)"\nID="rhel"\n'
    'ID_LIKE="centos fedora"\nVERSION_ID="10.0"\nPLATFORM_ID="platform:el10"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 10.0 (Coughlan)"\n',
    "ubi9.6": 'NAME="Red Hat Enterprise Linux"\nVERSION="9.6 (Plow)"\nID="rhel"\n'
    'ID_LIKE="fedora"\nVERSION_ID="9.6"\nPLATFORM_ID="platform:el9"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 9.6 (Plow)"\n',
    "ubi9.4": 'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\n'
    'ID_LIKE="fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
    "ubi8.10": 'NAME="Red Hat Enterprise Linux"\nVERSION="8.10 (Ootpa)"\nID="rhel"\n'
    'ID_LIKE="fedora"\nVERSION_ID="8.10"\nPLATFORM_ID="platform:el8"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 8.10 (Ootpa)"\nANSI_COLOR="0;31"\n',
    "debian13": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="13"\nVERSION="13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n',
    "debian12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "debian11": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="11"\nVERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n',
    "centos10": 'NAME="CentOS Stream"\nVERSION="10 (Coughlan)"\nID="centos"\n'
    'ID_LIKE="rhel fedora"\nVERSION_ID="10"\nPLATFORM_ID="platform:el10"\n',
    "centos7": 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\n'
    'VERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n',
    "ol10": 'NAME="Oracle Linux Server"\nVERSION="10.0"\nID="ol"\nID_LIKE="fedora"\n'
    'VARIANT="Server"\nVARIANT_ID="server"\nVERSION_ID="10.0"\n',
    "ol8": 'NAME="Oracle Linux Server"\nVERSION="8.10"\nID="ol"\nID_LIKE="fedora"\n'
    'VARIANT="Server"\nVARIANT_ID="server"\nVERSION_ID="8.10"\n',
    "alpine3.20": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.2\n'
    'PRETTY_NAME="Alpine Linux v3.20"\nHOME_URL="https://alpinelinux.org/"\n',
    "ubuntu24.04": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
    'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n',
}


@dataclass(frozen=True)
class Case:
    test: str
    image: str
    expected: dict[str, object]


def fingerprint(
    root: Path,
    command: str,
    setup: tuple[str, ...] = (),
    mapped: str | None = None,
    ready: str = "ready",
) -> dict[str, object]:
    """What /gather_runtime_info would carry for a container running ``command``, once
    its workload has printed ``ready`` and mapped ``mapped`` when given (a JVM started
    in the background). The workload must still be the same live process afterwards:
    one that exited while it was read leaves a partial result that says nothing."""
    (root / "dev/null").touch()
    c = start(root, command, ('mount --bind /dev/null "$R/dev/null"', *setup), ready=ready)
    try:
        started = _start_ticks(c.pid)
        deadline = time.monotonic() + 60
        while mapped and mapped not in _maps(c.pid):
            assert time.monotonic() < deadline, f"{mapped} never mapped"
            time.sleep(0.05)
        result = Fingerprinter(max_seconds=30).fingerprint("ire", [c.init_pid])
        assert _start_ticks(c.pid) == started, f"the workload exited while read: {command}"
    finally:
        stop(c)
    assert result.error is None, result.error
    return Fingerprint.model_validate(result.fields()).compatible()


def _start_ticks(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[19])
    except OSError:
        return None


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError as e:
        raise AssertionError(f"the workload exited before it was read: {e}") from e


def image_root(tmp_path: Path, image: str) -> Path:
    root = bound_root(tmp_path)
    (root / "etc/os-release").write_text(OS_RELEASE[image])
    return root


def executed(*argv: str) -> str:
    """What that tool stores for an executed version command: its stdout, trimmed."""
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


# --- os_test.go and sidecar_test.go: base images running ``tail -f /dev/null`` ----------

OS_CASES = [
    Case("TestUbi10Minimal_10_0", "ubi10", {"os": "rhel", "osVersion": "10.0"}),
    Case("TestUbi9Minimal_9_6", "ubi9.6", {"os": "rhel", "osVersion": "9.6"}),
    Case("TestUbi9Minimal_9_4", "ubi9.4", {"os": "rhel", "osVersion": "9.4"}),
    Case("TestUbi8Minimal_8_10", "ubi8.10", {"os": "rhel", "osVersion": "8.10"}),
    Case("TestDebian_13", "debian13", {"os": "debian", "osVersion": "13"}),
    Case("TestDebian_12", "debian12", {"os": "debian", "osVersion": "12"}),
    Case("TestDebian_11", "debian11", {"os": "debian", "osVersion": "11"}),
    Case("TestCentOs_10", "centos10", {"os": "centos", "osVersion": "10"}),
    Case("TestCentOs_7", "centos7", {"os": "centos", "osVersion": "7"}),
    Case("TestOracleLinux_10", "ol10", {"os": "ol", "osVersion": "10.0"}),
    Case("TestOracleLinux_8", "ol8", {"os": "ol", "osVersion": "8.10"}),
]


@pytest.mark.parametrize("case", OS_CASES, ids=lambda c: c.test)
def test_os_test_go(tmp_path: Path, case: Case) -> None:
    root = image_root(tmp_path, case.image)
    assert fingerprint(root, "echo ready; tail -f /dev/null") == case.expected


def test_sidecar_test_go_native_sidecar(tmp_path: Path) -> None:
    """The native sidecar of sidecar_test.go: centos:7 running ``sh -c 'tail -F …'``."""
    root = image_root(tmp_path, "centos7")
    command = "echo ready; sh -c 'tail -F /tmp/never-written'"
    assert fingerprint(root, command) == {"os": "centos", "osVersion": "7"}


# --- python_test.go, nodejs_test.go: version by executing the runtime --------------------


@pytest.mark.parametrize(
    "test,image,os_fields",
    [
        ("TestPython3_9_19", "debian12", {"os": "debian", "osVersion": "12"}),
        ("TestPython3_14_0", "debian13", {"os": "debian", "osVersion": "13"}),
    ],
)
def test_python_test_go(tmp_path: Path, test: str, image: str, os_fields: dict[str, str]) -> None:
    """The samples run ``python3 -m http.server``; that tool reports the stdout of
    ``python3 --version`` (here Debian's 3.11, not the sample's)."""
    root = image_root(tmp_path, image)
    server = (
        "import http.server as h; s = h.HTTPServer(('127.0.0.1', 0), h.SimpleHTTPRequestHandler)"
        "; print('ready', flush=True); s.serve_forever()"
    )
    got = fingerprint(root, f"cd /tmp && /usr/bin/python3 -c {_quote(server)}")
    assert got == {
        **os_fields,
        "kind": "Python",
        "kindVersion": executed("/usr/bin/python3", "--version"),
    }


@pytest.mark.parametrize(
    "test,image,os_fields",
    [
        ("TestNodeJS_22_6_0", "alpine3.20", {"os": "alpine", "osVersion": "3.20.2"}),
        ("TestNodeJS_22_14_0", "debian12", {"os": "debian", "osVersion": "12"}),
    ],
)
def test_nodejs_test_go(tmp_path: Path, test: str, image: str, os_fields: dict[str, str]) -> None:
    """The samples run an inline HTTP server with ``node -e``; that tool reports the
    stdout of ``node --version``."""
    if shutil.which("node") is None:
        pytest.skip("nodejs not installed (scripts/system-packages.txt)")
    root = image_root(tmp_path, image)
    server = (
        "require('http').createServer((q, r) => r.end('ok'))"
        ".listen(0, '127.0.0.1', () => console.log('ready'))"
    )
    got = fingerprint(root, f"cd /tmp && node -e {_quote(server)}")
    assert got == {**os_fields, "kind": "Node.js", "kindVersion": executed("node", "--version")}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# --- golang_test.go: the build info's Go version, unchanged --------------------------------


def _go_version(ctr: str) -> str:
    out = executed(ctr, "--address", "/nonexistent.sock", "--connect-timeout", "1ms", "version")
    match = re.search(r"Go version:\s+(\S+)", out)
    assert match is not None
    return match.group(1)


CTR_READY = "Client:"
"""The first line ``ctr version`` prints, before it blocks dialling the socket."""


def _ctr_command(path: str) -> str:
    return f"{path} --address /nonexistent.sock --connect-timeout 300s version"


def test_golang_test_go(tmp_path: Path) -> None:
    """TestGolang_1_22_6: a Go server on a Debian 12 image; that tool reports
    ``debug/buildinfo``'s ``GoVersion`` (fpr_native_executable), which for a toolchain
    like Debian's is ``runtime.Version()``, what the binary prints."""
    ctr = shutil.which("ctr")
    if ctr is None:
        pytest.skip("containerd not installed (scripts/system-packages.txt)")
    root = image_root(tmp_path, "debian12")
    got = fingerprint(root, _ctr_command(ctr), ready=CTR_READY)
    assert got == {
        "os": "debian",
        "osVersion": "12",
        "kind": "Golang",
        "kindVersion": _go_version(ctr),
    }


RED_HAT_GO = "go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime"


def _with_go_version(data: bytearray, version: str) -> None:
    """Rewrite an inline build info blob to carry ``version`` (its modinfo shortened to
    the main module's lines to make room). The Go runtime never reads this blob, so the
    program runs as before; readers of build info see a Red Hat toolchain's string."""
    at = data.index(b"\xff Go buildinf:")
    assert data[at + 15] & 2, "inline build info expected (Go >= 1.18)"
    pos = at + 32

    def uvarint(p: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = data[p]
            value |= (b & 0x7F) << shift
            p += 1
            if b < 0x80:
                return value, p
            shift += 7

    def encode(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    length, p = uvarint(pos)
    mod_len, q = uvarint(p + length)
    mod = bytes(data[q : q + mod_len])
    text = mod[16:-16].decode()
    kept = "".join(
        line + "\n" for line in text.splitlines() if line.split("\t")[0] in ("path", "mod")
    )
    new_mod = mod[:16] + kept.encode() + mod[-16:]
    blob = encode(len(version)) + version.encode() + encode(len(new_mod)) + new_mod
    old_size = q + mod_len - pos
    assert len(blob) <= old_size
    data[pos : pos + old_size] = blob + bytes(old_size - len(blob))


def test_golang_red_hat_toolchain_version_is_kept_whole(tmp_path: Path) -> None:
    """Red Hat's Go (what OpenShift's own images are built with) stores
    ``go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime``; that tool hands
    ``GoVersion`` on unchanged, so kindVersion is the whole string (issue 12)."""
    ctr = shutil.which("ctr")
    if ctr is None:
        pytest.skip("containerd not installed (scripts/system-packages.txt)")
    root = image_root(tmp_path, "ubi9.4")
    data = bytearray(Path(ctr).read_bytes())
    _with_go_version(data, RED_HAT_GO)
    server = root / "app/server"
    server.write_bytes(bytes(data))
    server.chmod(0o755)
    got = fingerprint(root, _ctr_command("/app/server"), ready=CTR_READY)
    assert got == {"os": "rhel", "osVersion": "9.4", "kind": "Golang", "kindVersion": RED_HAT_GO}


# --- java_test.go, spring_boot_test.go, quarkus_test.go, tomcat_test.go ------------------


@pytest.fixture(scope="module")
def jdk() -> Path:
    homes = sorted(Path("/usr/lib/jvm").glob("*/bin/javac"))
    if not homes:
        pytest.skip("no JDK installed (openjdk-17-jdk-headless in scripts/system-packages.txt)")
    return homes[0].resolve().parents[1]


def _release(root: Path, jdk: Path, version: str, vendor: str) -> tuple[str, ...]:
    """The sample JDK's ``release`` file over this JDK's (a bind mount in the container),
    and the configuration under /etc that the JDK's links point to, bound read-only as
    the JDK's package put it in its image: without it Debian's JDK finds no
    ``java.security`` and a JVM that initialises security (Tomcat does) dies at once."""
    release = root / "srv/jdk-release"
    release.parent.mkdir(parents=True, exist_ok=True)
    release.write_text(f'IMPLEMENTOR="{vendor}"\nJAVA_VERSION="{version}"\n')
    lines = [f'mount --bind "$R/srv/jdk-release" "$R{jdk}/release"']
    for config in sorted(_etc_targets(jdk)):
        (root / config.lstrip("/")).mkdir(parents=True, exist_ok=True)
        lines.append(f'mount --bind -o ro {config} "$R{config}"')
    return tuple(lines)


def _etc_targets(jdk: Path) -> set[str]:
    """The /etc directories (``/etc/java-17-openjdk``) that symlinks in ``jdk`` point into."""
    found = set()
    for path in jdk.rglob("*"):
        if path.is_symlink():
            target = os.path.realpath(path)
            if target.startswith("/etc/"):
                found.add("/".join(target.split("/")[:3]))
    return found


SLEEPER = """
package {package};
public class {name} {{
    public static void main(String[] args) throws Exception {{
        System.out.println("ready");
        Thread.sleep(600_000);
    }}
}}
"""


@pytest.fixture(scope="module")
def classes(jdk: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The launcher classes the samples' jars name, compiled as sleepers (the frameworks
    themselves are not needed: both tools read only manifests and names)."""
    out = tmp_path_factory.mktemp("classes")
    sources = []
    for qualified in (
        "org.springframework.boot.loader.launch.JarLauncher",
        "io.quarkus.bootstrap.runner.QuarkusEntryPoint",
        "app.Main",
    ):
        package, _, name = qualified.rpartition(".")
        src = out / "src" / f"{name}.java"
        src.parent.mkdir(exist_ok=True)
        src.write_text(SLEEPER.format(package=package, name=name))
        sources.append(str(src))
    subprocess.run([str(jdk / "bin/javac"), "-d", str(out), *sources], check=True)
    return out


def _jar(
    path: Path, manifest: dict[str, str], classes: Path | None = None, names: tuple[str, ...] = ()
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "Manifest-Version: 1.0\n" + "".join(f"{k}: {v}\n" for k, v in manifest.items())
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", text + "\n")
        for name in names:
            assert classes is not None
            jar.write(classes / name, name)


JAVA_CASES = [
    Case(
        "TestJava_17_0_13",
        "ubi8.10",
        {"os": "rhel", "osVersion": "8.10", "kind": "Java", "kindVersion": "17.0.13",
         "kindImplementer": "Red Hat, Inc."},
    ),
    Case(
        "TestJava_25_0_1",
        "ubi10",
        {"os": "rhel", "osVersion": "10.0", "kind": "Java", "kindVersion": "25.0.1",
         "kindImplementer": "Eclipse Adoptium"},
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", JAVA_CASES, ids=lambda c: c.test)
def test_java_test_go(tmp_path: Path, jdk: Path, classes: Path, case: Case) -> None:
    root = image_root(tmp_path, case.image)
    shutil.copytree(classes / "app", root / "app/classes/app")
    version, vendor = str(case.expected["kindVersion"]), str(case.expected["kindImplementer"])
    setup = _release(root, jdk, version, vendor)
    got = fingerprint(root, f"{jdk}/bin/java -cp /app/classes app.Main", setup)
    assert got == case.expected


def test_spring_boot_test_go(tmp_path: Path, jdk: Path, classes: Path) -> None:
    """TestSpringBoot_3_5_3 (ubi8 openjdk-21): an executable jar whose Main-Class is
    Spring Boot's launcher; the version is the jar manifest's Spring-Boot-Version."""
    root = image_root(tmp_path, "ubi8.10")
    launcher = "org/springframework/boot/loader/launch/JarLauncher.class"
    _jar(
        root / "deployments/app.jar",
        {
            "Main-Class": "org.springframework.boot.loader.launch.JarLauncher",
            "Start-Class": "com.example.App",
            "Spring-Boot-Version": "3.5.3",
        },
        classes,
        (launcher,),
    )
    setup = _release(root, jdk, "21.0.6", "Red Hat, Inc.")
    got = fingerprint(root, f"cd /deployments && {jdk}/bin/java -jar /deployments/app.jar", setup)
    assert got == {
        "os": "rhel",
        "osVersion": "8.10",
        "kind": "Java",
        "kindVersion": "21.0.6",
        "kindImplementer": "Red Hat, Inc.",
        "runtimes": [{"name": "Spring Boot", "version": "3.5.3"}],
    }


def test_quarkus_test_go(tmp_path: Path, jdk: Path, classes: Path) -> None:
    """TestQuarkus_3_15_1 (JVM mode, ubi8 openjdk-21): ``java -jar quarkus-run.jar`` of a
    fast-jar; that tool reads Implementation-Version of the Class-Path jar holding
    QuarkusEntryPoint, this project the quarkus-core jar's name in lib/main."""
    root = image_root(tmp_path, "ubi8.10")
    app = root / "deployments/quarkus-app"
    runner = "lib/boot/io.quarkus.quarkus-bootstrap-runner-3.15.1.jar"
    _jar(
        app / "quarkus-run.jar",
        {"Main-Class": "io.quarkus.bootstrap.runner.QuarkusEntryPoint", "Class-Path": runner},
    )
    entry = "io/quarkus/bootstrap/runner/QuarkusEntryPoint.class"
    _jar(app / runner, {"Implementation-Version": "3.15.1"}, classes, (entry,))
    _jar(app / "lib/main/io.quarkus.quarkus-core-3.15.1.jar", {"Implementation-Version": "3.15.1"})
    setup = _release(root, jdk, "21.0.4", "Red Hat, Inc.")
    command = f"cd /deployments && {jdk}/bin/java -jar /deployments/quarkus-app/quarkus-run.jar"
    assert fingerprint(root, command, setup) == {
        "os": "rhel",
        "osVersion": "8.10",
        "kind": "Java",
        "kindVersion": "21.0.4",
        "kindImplementer": "Red Hat, Inc.",
        "runtimes": [{"name": "Quarkus", "version": "3.15.1"}],
    }


@pytest.fixture
def tomcat() -> Iterator[Path]:
    home = Path("/usr/share/tomcat10")
    if not (home / "bin/bootstrap.jar").is_file():
        pytest.skip("tomcat10-common not installed (scripts/system-packages.txt)")
    yield home


def test_tomcat_test_go(tmp_path: Path, jdk: Path, tomcat: Path) -> None:
    """TestTomcat (tomcat:11.0-jre21 on Ubuntu 24.04): Bootstrap on the classpath; the
    version is bootstrap.jar's Implementation-Version. Here Debian's Tomcat classes in
    a bootstrap.jar whose manifest says what the sample's says."""
    from tests.support.runtime_procs import catalina_base

    root = image_root(tmp_path, "ubuntu24.04")
    home = root / "opt/tomcat"
    (home / "bin").mkdir(parents=True)
    with (
        zipfile.ZipFile(tomcat / "bin/bootstrap.jar") as src,
        zipfile.ZipFile(home / "bin/bootstrap.jar", "w") as dst,
    ):
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "META-INF/MANIFEST.MF":
                data = re.sub(
                    rb"Implementation-Version: \S+", b"Implementation-Version: 11.0.1", data
                )
            dst.writestr(item, data)
    shutil.copy(tomcat / "bin/tomcat-juli.jar", home / "bin/tomcat-juli.jar")
    os.symlink(tomcat / "lib", home / "lib")
    catalina_base(root / "srv/catalina")
    setup = _release(root, jdk, "21.0.5", "Eclipse Adoptium")
    command = (
        f"{jdk}/bin/java -classpath /opt/tomcat/bin/bootstrap.jar:/opt/tomcat/bin/tomcat-juli.jar"
        " -Dcatalina.home=/opt/tomcat -Dcatalina.base=/srv/catalina"
        " -Djava.io.tmpdir=/srv/catalina/temp org.apache.catalina.startup.Bootstrap start &"
        " echo ready; wait"
    )
    assert fingerprint(root, command, setup, mapped="/libjvm.so") == {
        "os": "ubuntu",
        "osVersion": "24.04",
        "kind": "Java",
        "kindVersion": "21.0.5",
        "kindImplementer": "Eclipse Adoptium",
        "runtimes": [{"name": "Apache Tomcat", "version": "11.0.1"}],
    }
