"""End to end: real processes in their own mount and PID namespaces over a prepared root,
fingerprinted from the host through /proc/<pid>/root, as the DaemonSet sees containers.

The workload is Debian's Go binary ``ctr`` copied into the root with its loader and libc;
it prints its own Go version (``ctr version``) and then blocks trying to reach a
containerd socket that does not exist, which keeps it alive while it is fingerprinted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fingerprints.base import Detection, ProcessView
from fingerprints.cli import container_of, container_pids
from fingerprints.engine import Fingerprinter
from fingerprints.golang import detect_go
from fingerprints.procsel import choose
from tests.kernel import KubeTree, container_id, pod_uid, v1_mounts

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
    assert (fp.model_extra or {})["goMainPath"] == f"{module}/cmd/ctr"
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
        assert second == first and second is not first
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
    assert "hostleak" not in fp.model_dump_json()
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
            [sys.executable, "-m", "extractor.cli", "fingerprint", "--pid", str(w.ctr_pid)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[2],
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
        [sys.executable, "-m", "extractor.cli", "fingerprint", "--pid", str(proc.pid)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
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
            [sys.executable, "-m", "extractor.cli", "fingerprint", "--pid", str(w.init_pid)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[2],
        )
    finally:
        stop(w)
        tree.cleanup()
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["os"], doc["kind"], doc["kindVersion"]) == (release["ID"], "Golang", w.go_version)
