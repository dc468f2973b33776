"""Process choice and process views, on real processes of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingerprints.procsel import (
    ExeReader,
    candidates,
    choose,
    is_wrapper,
    mapped_files,
    parse_environ,
    read_view,
)
from fingerprints.rootfs import Budget, ConfinedRoot

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


def test_exe_reader_of_a_gone_process_is_a_root_error() -> None:
    from fingerprints.base import RootError

    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(RootError):
        ExeReader(f"/proc/{proc.pid}/exe", Budget())(0, 4)


def test_helpers() -> None:
    assert is_wrapper("bash", "/usr/bin/bash") and is_wrapper("x", "/sbin/tini (deleted)")
    assert is_wrapper("supervisord", None) and not is_wrapper("java", "/usr/bin/java")
    assert parse_environ(b"A=1\0B=x=y\0junk\0=nokey\0") == {"A": "1", "B": "x=y"}
    maps = (
        b"00400000-00401000 r-xp 00000000 08:01 1 /srv/root/app/bin (deleted)\n"
        b"7f00-7f01 r--p 00000000 08:01 2 /srv/root/lib/libc.so.6\n"
        b"7f01-7f02 r--p 00000000 08:01 2 /srv/root/lib/libc.so.6\n"
        b"7f02-7f03 rw-p 00000000 00:00 0 [heap]\n"
        b"7f03-7f04 rw-p 00000000 00:00 0\n"
    )
    assert mapped_files(maps, "/srv/root") == ["/app/bin (deleted)", "/lib/libc.so.6"]
    assert mapped_files(maps, "/") == ["/srv/root/app/bin (deleted)", "/srv/root/lib/libc.so.6"]
