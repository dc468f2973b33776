"""Process choice and process views, on real processes of this machine."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingerprints.base import RootError
from fingerprints.detectors import java
from fingerprints.reading.processes import (
    ExeReader,
    candidates,
    choose,
    is_wrapper,
    mapped_files,
    parse_environ,
    read_view,
)
from fingerprints.reading.rootfs import Budget, ConfinedRoot

PY = os.path.realpath(sys.executable)


def _wait_children(pid: int, n: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(kids) >= n:
            return [int(k) for k in kids]
        time.sleep(0.01)
    raise AssertionError(f"{pid} did not start {n} children")


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """sh → exec cat (stdin pipe) with two children running the same python binary."""
    sleeper = f"{PY} -c 'import time; time.sleep(60)'"
    proc = subprocess.Popen(
        ["sh", "-c", f"{sleeper} & {sleeper} & exec cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    kids = _wait_children(proc.pid, 2)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "cat" or any(
        _exe(k) != PY for k in kids
    ):  # wait until the forks have exec'd their programs
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield proc, kids
    finally:
        for k in kids:
            os.kill(k, 9)
        proc.kill()
        proc.wait()


def test_choice_dedupes_binaries_and_orders_by_depth(
    tree: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, kids = tree
    found = candidates("/proc", [proc.pid])
    assert sorted(c.pid for c in found) == sorted([proc.pid, *kids])
    chosen = choose("/proc", [proc.pid])
    assert [c.pid for c in chosen] == [proc.pid, min(kids)]
    assert [c.depth for c in chosen] == [0, 1]
    assert chosen[1].exe_id == (os.stat(PY).st_dev, os.stat(PY).st_ino)
    assert len(choose("/proc", [proc.pid], limit=1)) == 1


def test_listed_child_is_deeper_than_its_parent(
    tree: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, kids = tree
    by_pid = {c.pid: c for c in candidates("/proc", [*kids, proc.pid])}
    assert by_pid[proc.pid].depth == 0 and by_pid[kids[0]].depth == 1


def test_wrapper_only_container_keeps_its_init() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 60; true"])
    try:
        _wait_children(proc.pid, 1)
        chosen = choose("/proc", [proc.pid])
        assert [(c.pid, c.wrapper) for c in chosen] == [(proc.pid, True)]
    finally:
        proc.kill()
        proc.wait()


def test_npm_start_resolves_to_the_app_process(tmp_path: Path) -> None:
    """``npm start`` runs on the same node binary as the app it starts (through sh): the
    launcher must not win the dedupe by being shallower."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not installed (scripts/system-packages.txt)")
    (tmp_path / "package.json").write_text(
        '{"name": "app", "scripts": {"start": "node server.js"}}'
    )
    (tmp_path / "server.js").write_text("setTimeout(() => {}, 60000);\n")
    proc = subprocess.Popen(
        [npm, "start"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        app = None
        while app is None:
            assert time.monotonic() < deadline, "npm did not start the app"
            for c in candidates("/proc", [proc.pid]):
                if Path(f"/proc/{c.pid}/cmdline").read_bytes() == b"node\0server.js\0":
                    app = c.pid
            time.sleep(0.05)
        assert Path(f"/proc/{proc.pid}/comm").read_text().split()[0] == "npm"
        assert [c.pid for c in choose("/proc", [proc.pid])] == [app]
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_dead_pids_are_skipped() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert choose("/proc", [proc.pid]) == []


def test_view_of_a_real_process(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = {"RI_MARKER": marker, "PATH": os.environ["PATH"]}
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [PY, "-c", code, "arg1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # loaded
        cand = choose("/proc", [proc.pid])[0]
        budget = Budget()
        view, reader = read_view("/proc", cand, ConfinedRoot(f"/proc/{proc.pid}/root"), budget)
        try:
            assert view.comm == Path(PY).name[:15]
            assert view.argv == [PY, "-c", code, "arg1"]
            assert view.environ["RI_MARKER"] == marker
            assert view.cwd == str(tmp_path) and view.exe == PY
            assert PY in view.maps
            assert any("libc.so" in m for m in view.maps)
            assert view.read_exe(0, 4) == b"\x7fELF"
            with open(PY, "rb") as f:
                f.seek(1000)
                assert view.read_exe(1000, 64) == f.read(64)
            assert budget.bytes_read == 68
        finally:
            reader.close()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.root
def test_mapped_device_node_is_never_opened(tmp_path: Path) -> None:
    """A container can mknod /dev/zero (or a tty) under a library's name and map it:
    map_files must refuse it before opening, and the confined root refuses it too."""
    node = tmp_path / "libjvm.so"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    code = (
        "import mmap, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "m = mmap.mmap(fd, 4096, prot=mmap.PROT_READ); print('ready', flush=True); "
        "sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [PY, "-c", code, str(node)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        cand = choose("/proc", [proc.pid])[0]
        budget = Budget()
        view, files = read_view("/proc", cand, ConfinedRoot(f"/proc/{proc.pid}/root"), budget)
        try:
            assert str(node) in view.maps
            assert view.read_mapped(str(node)) is None
            assert java.detect(view) is not None  # a JVM by its maps, read nothing
            assert budget.bytes_read == 0
        finally:
            files.close()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_exe_reader_of_a_gone_process_is_a_root_error() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(RootError):
        ExeReader(f"/proc/{proc.pid}/exe", Budget())(0, 4)


def test_helpers() -> None:
    assert is_wrapper("bash", "/usr/bin/bash") and is_wrapper("x", "/sbin/tini (deleted)")
    assert is_wrapper("supervisord", None) and not is_wrapper("java", "/usr/bin/java")
    assert is_wrapper("npm start", "/usr/bin/node") and is_wrapper("PM2 v5.4.2: God", "/n/node")
    assert not is_wrapper("node", "/usr/bin/node") and not is_wrapper("npmx", "/usr/bin/npmx")
    assert parse_environ(b"A=1\0B=x=y\0junk\0=nokey\0") == {"A": "1", "B": "x=y"}
    maps = (
        b"00400000-00401000 r-xp 00000000 08:01 1 /srv/root/app/bin (deleted)\n"
        b"7f00-7f01 r--p 00000000 08:01 2 /srv/root/lib/libc.so.6\n"
        b"7f01-7f02 r--p 00000000 08:01 2 /srv/root/lib/libc.so.6\n"
        b"7f02-7f03 rw-p 00000000 00:00 0 [heap]\n"
        b"7f03-7f04 rw-p 00000000 00:00 0\n"
    )
    assert mapped_files(maps, "/srv/root") == {
        "/app/bin (deleted)": "400000-401000",
        "/lib/libc.so.6": "7f00-7f01",
    }
    assert list(mapped_files(maps, "/")) == [
        "/srv/root/app/bin (deleted)",
        "/srv/root/lib/libc.so.6",
    ]
    assert mapped_files(b"zz-1 r--p 0 08:01 3 /x\n", "/") == {"/x": ""}


def test_deleted_mapped_file_is_read_through_map_files(tmp_path: Path) -> None:
    """A library deleted (or replaced) after it was loaded still reads as it was mapped."""
    lib = tmp_path / "libdemo.so.1"
    content = uuid.uuid4().bytes * 1024
    lib.write_bytes(content)
    code = (
        "import mmap, sys; f = open(sys.argv[1], 'rb'); "
        "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); f.close(); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [PY, "-c", code, str(lib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        new = tmp_path / "libdemo.so.1.new"  # an upgrade: a new inode renamed over the path
        new.write_bytes(b"replaced on disk")
        new.replace(lib)
        cand = choose("/proc", [proc.pid])[0]
        budget = Budget()
        root = ConfinedRoot(f"/proc/{proc.pid}/root", budget)
        view, files = read_view("/proc", cand, root, budget)
        try:
            assert f"{lib} (deleted)" in view.maps
            read = view.read_mapped(str(lib))
            assert read is not None and read(0, len(content) + 10) == content
            assert root.read_bytes(str(lib)) == b"replaced on disk"
            lib.unlink()
            assert read(16, 16) == content[16:32]
            assert view.read_mapped("/not/mapped.so") is None
            assert budget.bytes_read >= len(content) + 16
        finally:
            files.close()
        with pytest.raises(RootError):
            read(0, 4)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
