"""End to end: real processes in their own mount and PID namespaces over a prepared root,
fingerprinted from the host through /proc/<pid>/root, as the DaemonSet sees containers.

Two kinds of root. The small one holds Debian's Go binary ``ctr`` copied in with its
loader and libc; it prints its own Go version (``ctr version``) and then blocks trying to
reach a containerd socket that does not exist, which keeps it alive while it is
fingerprinted. The bound one is an image-like tree whose /usr is the host's, bind-mounted
read-only inside the new mount namespace (so Debian's JVM, Tomcat and Python run in it),
with its own /etc, /app and whatever hostile files a test plants.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extractor.commands.fingerprint import container_of, container_pids
from extractor.contract import Fingerprint
from fingerprints.base import Detection, ProcessView
from fingerprints.detectors.golang import detect_go
from fingerprints.engine import Fingerprinter
from fingerprints.reading.processes import choose
from tests.support.kernel import KubeTree, container_id, pod_uid, v1_mounts
from tests.support.paths import REPO_ROOT
from tests.support.runtime_procs import catalina_base

pytestmark = pytest.mark.root

CTR = "/usr/bin/ctr"
SHELL = "/bin/dash"


def _copy_with_libs(src: str, root: Path, dest: str) -> None:
    """Copy a dynamically linked binary and what ``ldd`` says it loads."""
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, target)
    out = subprocess.run(["ldd", src], capture_output=True, text=True, check=True).stdout
    for lib in re.findall(r"(/\S+) \(0x", out):
        lib_target = root / lib.lstrip("/")
        lib_target.parent.mkdir(parents=True, exist_ok=True)
        if not lib_target.exists():
            shutil.copy(os.path.realpath(lib), lib_target)


def make_root(base: Path) -> Path:
    root = base / f"root-{uuid.uuid4().hex[:8]}"
    _copy_with_libs(CTR, root, "/usr/bin/ctr")
    _copy_with_libs(SHELL, root, "/bin/sh")
    (root / "etc").mkdir(exist_ok=True)
    (root / "usr" / "lib").mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Workload:
    unshare: subprocess.Popen[str]
    init_pid: int
    ctr_pid: int
    go_version: str


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start(root: Path) -> Workload:
    """``sh -c 'ctr …; true'`` as PID 1 of new mount+PID namespaces chrooted to ``root``."""
    sock = f"/ri-test-{uuid.uuid4().hex}.sock"
    script = f"/usr/bin/ctr --address {sock} --connect-timeout 120s version; true"
    proc = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--root",
            str(root),
            "/bin/sh",
            "-c",
            script,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        go_version = None
        for line in proc.stdout:  # ctr prints its client part, then blocks on the socket
            m = re.search(r"Go version:\s+(\S+)", line)
            if m:
                go_version = m.group(1)
                break
        assert go_version, "ctr did not start inside the prepared root"
        init = _children(proc.pid)
        assert len(init) == 1
        ctr = [c for c in _children(init[0]) if Path(f"/proc/{c}/comm").read_text() == "ctr\n"]
        assert len(ctr) == 1
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Workload(proc, init[0], ctr[0], go_version)


def stop(w: Workload) -> None:
    """Kill unshare; --kill-child takes the namespace's init and with it every process."""
    w.unshare.kill()
    w.unshare.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in (w.init_pid, w.ctr_pid)):
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """The root link goes last: do_exit drops the mm (and /proc/<pid>/exe) before the fs."""
    try:
        os.readlink(f"/proc/{pid}/root")
    except OSError:
        return False
    return True


@pytest.fixture
def go_root(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    root = make_root(tmp_path)
    release = {"ID": f"testos{uuid.uuid4().hex[:6]}", "VERSION_ID": f"{os.getpid() % 97}.{7}"}
    (root / "usr/lib/os-release").write_text("".join(f'{k}="{v}"\n' for k, v in release.items()))
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")  # absolute: must stay inside
    yield root, release


def test_go_workload_behind_a_shell(go_root: tuple[Path, dict[str, str]]) -> None:
    root, release = go_root
    w = start(root)
    try:
        (root / "usr/bin/ctr").unlink()  # still readable through /proc/<pid>/exe
        chosen = choose("/proc", [w.init_pid])
        assert [c.pid for c in chosen] == [w.ctr_pid], "the shell wrapper must be skipped"
        seen: list[ProcessView] = []

        def spy(view: ProcessView) -> Detection | None:
            seen.append(view)
            return None

        fp = Fingerprinter(detectors=[detect_go, spy]).fingerprint("e2e", [w.init_pid])
    finally:
        stop(w)
    assert fp.error is None
    assert (fp.os, fp.osVersion) == (release["ID"], release["VERSION_ID"])
    assert (fp.kind, fp.kindVersion) == ("Golang", w.go_version)
    module = subprocess.run([CTR, "--version"], capture_output=True, text=True).stdout.split()[1]
    assert fp.extra["goMainPath"] == f"{module}/cmd/ctr"
    view = seen[0]
    assert view.exe == "/usr/bin/ctr (deleted)"
    assert view.cwd == "/"
    assert view.argv[0] == "/usr/bin/ctr" and view.comm == "ctr"
    assert "/lib64/ld-linux-x86-64.so.2" in view.maps


def test_cache_is_reused_while_the_process_lives(go_root: tuple[Path, dict[str, str]]) -> None:
    root, _ = go_root
    w = start(root)
    calls: list[int] = []

    def counting(view: ProcessView) -> Detection | None:
        calls.append(view.pid)
        return detect_go(view)

    engine = Fingerprinter(detectors=[counting])
    try:
        first = engine.fingerprint("c1", [w.init_pid])
        second = engine.fingerprint("c1", [w.init_pid])
        assert (engine.computed, calls) == (1, [w.ctr_pid])
        # results are immutable, so the cached one is handed out as it is
        assert second is first
        with pytest.raises(TypeError):
            second.extra["goMainPath"] = "changed"  # type: ignore[index]
    finally:
        stop(w)
    third = engine.fingerprint("c1", [w.init_pid])
    assert engine.computed == 2
    assert third.kind is None and third.error == "no live process to fingerprint"


def test_cache_forgets_containers_missing_from_a_pass(
    go_root: tuple[Path, dict[str, str]],
) -> None:
    root, _ = go_root
    w = start(root)
    engine = Fingerprinter()
    try:
        engine.fingerprint("gone", [w.ctr_pid])  # pass 1: both
        engine.fingerprint("kept", [w.ctr_pid])
        engine.fingerprint("kept", [w.ctr_pid])  # pass 2: "gone" is not seen
        engine.fingerprint("kept", [w.ctr_pid])  # pass 3 starts: pass 2 dropped "gone"
        assert engine.computed == 2
        engine.fingerprint("gone", [w.ctr_pid])
    finally:
        stop(w)
    assert engine.computed == 3


def test_hostile_root(tmp_path: Path) -> None:
    """FIFO, device node, loop and escaping links where release files should be."""
    root = make_root(tmp_path)
    host_secret = tmp_path / "host-os-release"
    host_secret.write_text('ID="hostleak"\nVERSION_ID="666"\n')
    etc = root / "etc"
    os.mkfifo(etc / "os-release")
    (root / "usr/lib/os-release").symlink_to(host_secret)
    (etc / "alpine-release").symlink_to("alpine-release")
    os.mknod(etc / "redhat-release", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    (etc / "centos-release").symlink_to("../" * 12 + str(host_secret).lstrip("/"))
    (etc / "debian_version").write_text("11.7\n")
    w = start(root)
    try:
        fp = Fingerprinter(max_seconds=10).fingerprint("hostile", [w.init_pid])
    finally:
        stop(w)
    assert (fp.os, fp.osVersion) == ("debian", "11")
    assert "hostleak" not in json.dumps(fp.fields())
    assert fp.kind == "Golang"


def test_process_exiting_mid_fingerprint_gives_a_partial_result(
    go_root: tuple[Path, dict[str, str]],
) -> None:
    root, release = go_root
    w = start(root)

    def killer(view: ProcessView) -> Detection | None:
        stop(w)
        view.root.read_bytes("/usr/lib/os-release")
        return Detection(kind="never")

    try:
        fp = Fingerprinter(detectors=[detect_go, killer]).fingerprint("dying", [w.init_pid])
    finally:
        stop(w)
    assert fp.os == release["ID"] and fp.kind == "Golang"
    assert fp.error is not None and "killer" in fp.error


def test_cli_prints_the_container_fingerprint(go_root: tuple[Path, dict[str, str]]) -> None:
    root, release = go_root
    w = start(root)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "runtime_insights", "fingerprint", "--pid", str(w.ctr_pid)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
    finally:
        stop(w)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["os"] == release["ID"] and doc["osVersion"] == release["VERSION_ID"]
    assert (doc["kind"], doc["kindVersion"]) == ("Golang", w.go_version)
    assert doc["goVersionConfidence"] == "exact"


def test_cli_missing_pid() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{proc.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    out = subprocess.run(
        [sys.executable, "-m", "runtime_insights", "fingerprint", "--pid", str(proc.pid)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 1
    assert f"no process {proc.pid}" in out.stderr
    assert out.stdout == ""


def test_cli_finds_the_container_through_its_cgroup(
    go_root: tuple[Path, dict[str, str]],
) -> None:
    """A process in a kubelet-shaped cgroup: its container's other processes join in."""
    root, release = go_root
    tree = KubeTree(v1_mounts())
    cid = container_id()
    path = tree.container_path(pod_uid(), cid)
    w = start(root)
    try:
        for pid in (w.init_pid, w.ctr_pid):
            tree.enter(path, pid)
        assert container_of("/proc", w.init_pid) == cid
        assert container_pids("/proc", cid) == sorted([w.init_pid, w.ctr_pid])
        assert container_of("/proc", w.unshare.pid) != cid
        out = subprocess.run(
            [sys.executable, "-m", "runtime_insights", "fingerprint", "--pid", str(w.init_pid)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
    finally:
        stop(w)
        tree.cleanup()
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["os"], doc["kind"], doc["kindVersion"]) == (release["ID"], "Golang", w.go_version)


# --- Go binaries the loader runs but whose build info or section table is hostile ---


def _corrupt_copy(root: Path, edit: Callable[[bytearray], None]) -> None:
    target = root / "usr/bin/ctr"
    data = bytearray(target.read_bytes())
    edit(data)
    target.write_bytes(bytes(data))


def _fake_buildinfo(data: bytearray) -> None:
    """The blob's header claims pointer format with an impossible pointer size: the
    program runs (the runtime never reads this blob), our parser must not trust it."""
    at = data.index(b"\xff Go buildinf:")
    data[at + 14 : at + 16] = b"\x03\x00"


def _broken_section_table(data: bytearray) -> None:
    """e_shoff past the end of the file and e_shnum at its maximum: the kernel only
    needs program headers, our reader must fall back to them."""
    data[0x28:0x30] = (len(data) + (1 << 30)).to_bytes(8, "little")
    data[0x3C:0x3E] = (0xFFFF).to_bytes(2, "little")


@pytest.mark.parametrize("edit", [_fake_buildinfo, _broken_section_table], ids=lambda f: f.__name__)
def test_hostile_go_executable(tmp_path: Path, edit: Callable[[bytearray], None]) -> None:
    root = make_root(tmp_path)
    (root / "etc/os-release").write_text("ID=testos\nVERSION_ID=1\n")
    _corrupt_copy(root, edit)
    w = start(root)
    t0 = time.monotonic()
    try:
        fp = Fingerprinter(max_seconds=5).fingerprint("hostile-go", [w.init_pid])
    finally:
        stop(w)
    assert time.monotonic() - t0 < 5
    assert (fp.os, fp.kind, fp.kindVersion) == ("testos", "Golang", w.go_version)
    extra = fp.extra
    if edit is _fake_buildinfo:  # the version then comes from runtime.buildVersion
        assert "pointer size" in str(extra["goBuildInfoError"])
    else:
        assert "goBuildInfoError" not in extra and extra["goMainPath"]


# --- a bound root: the host's /usr read-only, the image's own /etc and /app ---


@dataclass
class Bound:
    """A workload started as ``sh -c <command>`` (PID 1, a wrapper) in a bound root."""

    unshare: subprocess.Popen[str]
    init_pid: int
    pid: int
    """The workload process (the shell's child)."""


def bound_root(base: Path) -> Path:
    """An image-like tree: merged-/usr links, its own os-release, empty mount points."""
    root = base / f"bound-{uuid.uuid4().hex[:8]}"
    for d in ("usr", "etc", "tmp", "app", "proc", "dev"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "etc/os-release").write_text(f'ID="img{uuid.uuid4().hex[:6]}"\nVERSION_ID="3.1"\n')
    return root


def start_bound(root: Path, command: str, binds: tuple[str, ...] = ()) -> Bound:
    """``command`` under ``sh -c`` as PID 1 of new mount+PID namespaces chrooted to root,
    with /usr (read-only), a fresh /proc and ``binds`` mounted from the host.

    Ready when the workload prints a line with ``ready`` on stdout."""
    setup = ['mount --bind -o ro /usr "$R/usr"', 'mount -t proc proc "$R/proc"']
    for path in binds:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        setup.append(f'mount --rbind {shlex.quote(path)} "$R"{shlex.quote(path)}')
    setup.append(f'exec chroot "$R" /bin/sh -c {shlex.quote(command + "; true")}')
    proc = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "/bin/sh",
            "-c",
            " && ".join(setup),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"R": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line, f"workload did not start in {root}: {line!r}"
        (init,) = _children(proc.pid)
        (pid,) = _children(init)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Bound(proc, init, pid)


def stop_bound(b: Bound) -> None:
    b.unshare.kill()
    b.unshare.wait()
    if b.unshare.stdout is not None:
        b.unshare.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in (b.init_pid, b.pid)):
        time.sleep(0.01)


def _jdk_home() -> Path:
    """Debian's OpenJDK (the one Tomcat's package runs on), else any JDK installed."""
    homes = sorted(Path("/usr/lib/jvm").glob("*/bin/java"), key=lambda p: "temurin" in str(p))
    if not homes:
        pytest.skip("no JDK installed (openjdk-17-jre-headless in scripts/system-packages.txt)")
    return homes[0].resolve().parents[1]


def test_java_behind_a_wrapper_script(tmp_path: Path) -> None:
    """A launcher script runs Tomcat on the JDK: one result for the container, from the
    java process (the shell is skipped), with version, vendor and Tomcat's version."""
    tomcat = Path("/usr/share/tomcat10")
    if not (tomcat / "bin/bootstrap.jar").is_file():
        pytest.skip("tomcat10-common not installed (scripts/system-packages.txt)")
    home = _jdk_home()
    props = dict(
        re.findall(
            r"^\s+([\w.]+) = (.*)$",
            subprocess.run(
                [str(home / "bin/java"), "-XshowSettings:properties", "-version"],
                capture_output=True,
                text=True,
                check=True,
            ).stderr,
            re.MULTILINE,
        )
    )
    with zipfile.ZipFile(tomcat / "bin/bootstrap.jar") as zf:
        manifest = zf.read("META-INF/MANIFEST.MF").decode()
    tomcat_version = re.search(r"^Implementation-Version: (\S+)", manifest, re.MULTILINE)
    assert tomcat_version is not None
    root = bound_root(tmp_path)
    catalina_base(root / "srv/catalina")
    (root / "app/start.sh").write_text(
        "#!/bin/sh\n"
        f"CATALINA_HOME={tomcat}\n"
        f'"{home}/bin/java" -classpath "$CATALINA_HOME/bin/bootstrap.jar:'
        '$CATALINA_HOME/bin/tomcat-juli.jar" -Dcatalina.home="$CATALINA_HOME" '
        "-Dcatalina.base=/srv/catalina -Djava.io.tmpdir=/srv/catalina/temp "
        "org.apache.catalina.startup.Bootstrap start &\n"
        "echo ready; wait\n"
    )
    binds = tuple(p for p in ("/etc/java-17-openjdk", "/dev") if os.path.isdir(p))
    b = start_bound(root, "/bin/sh /app/start.sh", binds)
    try:
        # the script (a child of PID 1's shell) started java: wait until it mapped libjvm
        deadline = time.monotonic() + 60
        java_pid = None
        while java_pid is None:
            assert time.monotonic() < deadline, "java did not start"
            for kid in _children(b.pid):
                if "/libjvm.so" in Path(f"/proc/{kid}/maps").read_text():
                    java_pid = kid
            time.sleep(0.05)
        chosen = choose("/proc", [b.init_pid])
        assert [c.pid for c in chosen] == [java_pid], "the two shells must be skipped"
        fp = Fingerprinter().fingerprint("java-wrapped", [b.init_pid])
    finally:
        stop_bound(b)
    release = dict(line.split("=", 1) for line in (root / "etc/os-release").read_text().split())
    assert fp.error is None
    assert Fingerprint.model_validate(fp.fields()).compatible() == {
        "os": release["ID"].strip('"'),
        "osVersion": "3.1",
        "kind": "Java",
        "kindVersion": props["java.version"],
        "kindImplementer": props["java.vendor"],
        "runtimes": [{"name": "Apache Tomcat", "version": tomcat_version.group(1)}],
    }
    assert fp.extra["javaHome"] == str(home)


# --- hostile bound roots: each plants one attack; the result is partial, bounded, confined ---

MAIN_PY = (
    "import mmap, sys, time\n"
    "keep = []\n"
    "for path in (a for a in sys.argv[1:] if a.startswith('/')):\n"
    "    with open(path, 'rb') as f:\n"
    "        keep.append(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ))\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)
BUDGET_SECONDS = 5.0


@dataclass
class Attack:
    """What a hostile test planted: the command to run and what must never show up."""

    command: str
    secret: str


def _plant_secret(tmp_path: Path) -> tuple[Path, str]:
    secret = f"hostleak{uuid.uuid4().hex[:8]}"
    path = tmp_path / "host-only" / "os-release"
    path.parent.mkdir()
    path.write_text(f'ID="{secret}"\nVERSION_ID="666"\nJAVA_VERSION="{secret}"\n')
    return path, secret


def _python_app(
    root: Path, app_dir: bytes = b"/app", maps: tuple[str, ...] = (), env: str = ""
) -> str:
    """The command running main.py from ``app_dir``, mapping ``maps`` (container paths)."""
    d = root / os.fsdecode(app_dir.lstrip(b"/"))
    subprocess.run(["mkdir", "-p", str(d)], check=True)  # os.makedirs recurses per level
    (d / "main.py").write_text(MAIN_PY)
    where = shlex.quote(os.fsdecode(app_dir))
    args = " ".join(shlex.quote(m) for m in maps)
    return f"cd {where} && {env} /usr/bin/python3 {where}/main.py {args}"


def _absolute_symlink(root: Path, secret: Path) -> str:
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to(secret)  # the host's path, not the image's
    (root / "app/lib").mkdir(parents=True)
    (root / "app/lib/release").symlink_to(secret)
    return _python_app(root)


def _dotdot_symlink(root: Path, secret: Path) -> str:
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("../" * 30 + str(secret).lstrip("/"))
    return _python_app(root)


def _symlink_loop(root: Path, secret: Path) -> str:
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("/etc/loop-a")
    (root / "etc/loop-a").symlink_to("loop-b")
    (root / "etc/loop-b").symlink_to("/etc/loop-a")
    (root / "etc/alpine-release").symlink_to("alpine-release")
    return _python_app(root)


def _fifo(root: Path, secret: Path) -> str:
    (root / "etc/os-release").unlink()
    os.mkfifo(root / "etc/os-release")
    os.mkfifo(root / "etc/debian_version")
    site = root / "app/site"
    (site / "flask-3.0.0.dist-info").mkdir(parents=True)
    os.mkfifo(site / "flask-3.0.0.dist-info/METADATA")
    os.mkfifo(site / "flask-3.0.0.dist-info/PKG-INFO")
    # "flask" on the command line asks for Flask's metadata, which is a FIFO
    return _python_app(root, env="PYTHONPATH=/app/site") + "flask"


def _device_nodes(root: Path, secret: Path) -> str:
    (root / "etc/os-release").unlink()
    os.mknod(root / "etc/os-release", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    os.mknod(root / "etc/redhat-release", stat.S_IFCHR | 0o600, os.makedev(5, 0))  # a tty
    return _python_app(root)


def _sparse_files(root: Path, secret: Path) -> str:
    with open(root / "etc/os-release", "r+b") as f:
        f.truncate(8 << 30)
    lib = root / "app/lib/libpython3.11.so.1.0"
    lib.parent.mkdir(parents=True)
    with open(lib, "wb") as f:
        f.truncate(8 << 30)  # mapped by the workload: the Python detector scans it
    return _python_app(root, maps=("/app/lib/libpython3.11.so.1.0",))


def _truncated_elf(root: Path, secret: Path) -> str:
    lib = root / "opt/jdk/lib/server/libjvm.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(Path(sys.executable).read_bytes()[:200])  # headers cut mid-table
    (root / "opt/jdk/release").symlink_to(secret)
    return _python_app(root, maps=("/opt/jdk/lib/server/libjvm.so",))


def _deep_tree(root: Path, secret: Path) -> str:
    """The app 1,000 directories down, and os-release behind links that multiply the
    components to walk (each link names the next one three times)."""
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("/app/b0/os-release")
    for i in range(30):
        (root / f"app/b{i}").symlink_to("/".join([f"b{i + 1}", ".."] * 2 + [f"b{i + 1}"]))
    (root / "app/b30").symlink_to("/etc")
    return _python_app(root, ("/app/" + "/".join(["d"] * 1000)).encode())


def _non_utf8_names(root: Path, secret: Path) -> str:
    app = b"/app/caf\xe9-\xff"
    lib = os.fsencode(root) + app + b"/libruby-\xff.so"
    command = _python_app(root, app, (os.fsdecode(app + b"/libruby-\xff.so"),))
    with open(lib, "wb") as f:
        f.write(b"\x7fELF\x02\x01\x01" + b"\xff" * 4096)
    return command


@pytest.mark.parametrize(
    "plant",
    [
        _absolute_symlink,
        _dotdot_symlink,
        _symlink_loop,
        _fifo,
        _device_nodes,
        _sparse_files,
        _truncated_elf,
        _deep_tree,
        _non_utf8_names,
    ],
    ids=lambda f: f.__name__.lstrip("_"),
)
def test_hostile_bound_root(tmp_path: Path, plant: Callable[[Path, Path], str]) -> None:
    """Whatever the image holds, the fingerprint is partial or carries an error, never
    anything read outside the root, and it comes within the container's time budget."""
    secret_path, secret = _plant_secret(tmp_path)
    root = bound_root(tmp_path)
    command = plant(root, secret_path)
    b = start_bound(root, command)
    engine = Fingerprinter(max_seconds=BUDGET_SECONDS)
    try:
        t0 = time.monotonic()
        fp = engine.fingerprint("hostile", [b.init_pid])
        elapsed = time.monotonic() - t0
        again = engine.fingerprint("hostile", [b.init_pid])
    finally:
        stop_bound(b)
        # rm, not pytest's cleanup: shutil.rmtree recurses once per level of the deep tree
        subprocess.run(["rm", "-rf", str(root)], check=True)
    assert elapsed < BUDGET_SECONDS + 1
    dumped = json.dumps(fp.fields())
    assert secret not in dumped and "666" not in dumped
    assert fp.kind in ("Python", "Java") or fp.error is not None, dumped
    assert (again, engine.computed) == (fp, 1), "a hostile root costs its budget once"
