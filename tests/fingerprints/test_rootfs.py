"""ConfinedRoot against hostile container roots built on the real filesystem.

Each test plants a sentinel *outside* the root and asserts it can never be read through
the root, whatever the symlinks say; non-regular files and oversized files must fail
fast with RootError instead of blocking or reading gigabytes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fingerprints.base import RootError
from fingerprints.reading.rootfs import MAX_SYMLINK_HOPS, Budget, ConfinedRoot
from tests.support.paths import REPO_ROOT


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """(root, sentinel path outside the root, sentinel content)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    secret = f"host-secret-{uuid.uuid4()}".encode()
    sentinel = tmp_path / "outside" / "secret.txt"
    sentinel.parent.mkdir()
    sentinel.write_bytes(secret)
    return root, sentinel, secret


def test_plain_file_and_offset(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    (root / "etc" / "hostname").write_bytes(b"0123456789")
    r = ConfinedRoot(str(root))
    assert r.read_bytes("/etc/hostname") == b"0123456789"
    assert r.read_bytes("etc/./hostname", max_bytes=3, offset=4) == b"456"
    assert r.read_text("/etc/hostname") == "0123456789"
    assert r.size("/etc/hostname") == 10
    assert r.is_file("/etc/hostname") and not r.is_dir("/etc/hostname")
    assert r.is_dir("/etc") and not r.is_file("/etc")
    assert not r.is_file("/etc/missing")
    with pytest.raises(RootError):
        r.read_bytes("/etc/missing")


def test_absolute_symlink_is_reanchored_at_root(tree: tuple[Path, Path, bytes]) -> None:
    root, sentinel, secret = tree
    (root / "etc" / "os-release").symlink_to(sentinel)
    r = ConfinedRoot(str(root))
    with pytest.raises(RootError):
        r.read_bytes("/etc/os-release")
    decoy = root / str(sentinel).lstrip("/")
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(b"inside")
    assert r.read_bytes("/etc/os-release") == b"inside"
    assert r.resolve("/etc/os-release") == str(sentinel)
    assert secret not in r.read_bytes("/etc/os-release")


def test_dotdot_symlink_is_clamped_at_root(tree: tuple[Path, Path, bytes]) -> None:
    root, _, secret = tree
    (root / "etc" / "x").symlink_to("../../../../../../outside/secret.txt")
    r = ConfinedRoot(str(root))
    with pytest.raises(RootError):
        r.read_bytes("/etc/x")
    with pytest.raises(RootError):
        r.read_bytes("/../outside/secret.txt")
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(b"inside")
    assert r.read_bytes("/etc/x") == b"inside"
    assert r.read_bytes("/../../outside/secret.txt") != secret
    assert r.resolve("/etc/x") == "/outside/secret.txt"


def test_absolute_directory_symlink_mid_path(tree: tuple[Path, Path, bytes]) -> None:
    root, sentinel, _ = tree
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "os-release").write_text("ID=inside\n")
    (root / "lib").symlink_to("/usr/lib")
    (root / "escape").symlink_to(sentinel.parent)
    r = ConfinedRoot(str(root))
    assert r.read_text("/lib/os-release") == "ID=inside\n"
    assert r.resolve("/lib/../lib/os-release") == "/usr/lib/os-release"
    with pytest.raises(RootError):
        r.read_bytes("/escape/secret.txt")
    assert r.listdir("/lib") == ["os-release"]
    with pytest.raises(RootError):
        r.listdir("/escape")


def test_symlink_loops_fail(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/a")
    (root / "self").symlink_to("self")
    (root / "dirloop").symlink_to("dirloop/x")
    r = ConfinedRoot(str(root))
    for path in ("/a", "/self", "/dirloop", "/a/b/c"):
        with pytest.raises(RootError, match="symbolic links"):
            r.read_bytes(path)
        assert not r.is_file(path)


def test_symlink_hop_cap_is_exact(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    (root / "target").write_bytes(b"ok")
    prev = "target"
    for i in range(MAX_SYMLINK_HOPS + 1):
        (root / f"l{i}").symlink_to(prev)
        prev = f"l{i}"
    r = ConfinedRoot(str(root))
    assert r.read_bytes(f"/l{MAX_SYMLINK_HOPS - 1}") == b"ok"
    with pytest.raises(RootError):
        r.read_bytes(f"/l{MAX_SYMLINK_HOPS}")


def test_fifo_and_socket_are_refused_without_blocking(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    os.mkfifo(root / "etc" / "os-release")
    (root / "fifo-link").symlink_to("/etc/os-release")
    sock_path = root / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        r = ConfinedRoot(str(root))
        for path in ("/etc/os-release", "/fifo-link", "/sock"):
            with pytest.raises(RootError, match="not a regular file"):
                r.read_bytes(path)
            assert not r.is_file(path)
            with pytest.raises(RootError):
                r.size(path)


@pytest.mark.root
def test_device_nodes_are_never_opened(tree: tuple[Path, Path, bytes]) -> None:
    """/dev/zero would read forever and a tty could block: both must be refused."""
    root, _, _ = tree
    os.mknod(root / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    os.mknod(root / "tty", stat.S_IFCHR | 0o600, os.makedev(5, 0))
    r = ConfinedRoot(str(root))
    for path in ("/zero", "/tty"):
        with pytest.raises(RootError, match="not a regular file"):
            r.read_bytes(path, max_bytes=1 << 30)
    assert r.budget.bytes_read == 0


def test_sparse_multi_gb_file_is_capped(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    big = root / "big"
    with open(big, "wb") as f:
        f.truncate(8 << 30)
    budget = Budget(max_seconds=30, max_bytes_total=4 << 20)
    r = ConfinedRoot(str(root), budget)
    assert r.size("/big") == 8 << 30
    assert len(r.read_bytes("/big")) == 1 << 20
    with pytest.raises(RootError, match="byte budget"):
        r.read_bytes("/big", max_bytes=8 << 30)
    assert budget.bytes_read <= budget.max_bytes_total


def test_time_budget(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    (root / "f").write_bytes(b"x")
    r = ConfinedRoot(str(root), Budget(max_seconds=0))
    with pytest.raises(RootError, match="time budget"):
        r.read_bytes("/f")
    with pytest.raises(RootError, match="time budget"):
        r.is_file("/f")


def test_deep_tree_and_component_cap(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    deep = "/".join(["d"] * 300)
    (root / deep).mkdir(parents=True)
    (root / deep / "leaf").write_bytes(b"deep")
    r = ConfinedRoot(str(root))
    assert r.read_bytes(deep + "/leaf") == b"deep"
    assert r.resolve(deep + "/" + "../" * 300 + "etc") == "/etc"
    (root / "bomb").symlink_to("/" + "/".join(["."] * 2 + ["d"] * 300 + [".."] * 300) + "/bomb2")
    (root / "bomb2").symlink_to("bomb")
    with pytest.raises(RootError):
        r.read_bytes("/bomb")


def test_non_utf8_names(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    name = b"caf\xe9-\xff"
    with open(os.path.join(os.fsencode(root), name), "wb") as f:
        f.write(b"latin1")
    r = ConfinedRoot(str(root))
    listed = [n for n in r.listdir("/") if n not in ("etc",)]
    assert listed == [os.fsdecode(name)]
    assert r.read_bytes("/" + listed[0]) == b"latin1"


def test_listdir_limit_and_errors(tree: tuple[Path, Path, bytes]) -> None:
    root, _, _ = tree
    for i in range(50):
        (root / "etc" / f"f{i:02d}").write_bytes(b"")
    r = ConfinedRoot(str(root))
    assert len(r.listdir("/etc", limit=7)) == 7
    assert r.listdir("/etc") == sorted(f"f{i:02d}" for i in range(50))
    with pytest.raises(RootError, match="not a directory"):
        r.listdir("/etc/f00")
    with pytest.raises(RootError, match="not a directory"):
        r.read_bytes("/etc/f00/..")


def test_missing_root_is_a_clean_error(tmp_path: Path) -> None:
    r = ConfinedRoot(str(tmp_path / "nope"))
    with pytest.raises(RootError, match="container root"):
        r.read_bytes("/etc/os-release")
    assert not r.is_dir("/")


def test_process_root_disappears_mid_use() -> None:
    """A container that exits between two reads yields RootError, not a host read."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        r = ConfinedRoot(f"/proc/{proc.pid}/root")
        with open("/etc/passwd", "rb") as f:
            assert r.read_bytes("/etc/passwd") == f.read()
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(RootError):
        r.read_bytes("/etc/passwd")


PSEUDO_PROBE = """
import json, os, sys
from fingerprints.base import RootError
from fingerprints.reading.rootfs import ConfinedRoot

r = ConfinedRoot(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    for name, call in (("read", r.read_bytes), ("list", r.listdir), ("size", r.size)):
        try:
            call(path)
            out[f"{name} {path}"] = "ok"
        except RootError as e:
            out[f"{name} {path}"] = str(e)
    out[f"is_file {path}"] = r.is_file(path)
print(json.dumps(out))
"""


@pytest.mark.root
def test_pseudo_filesystems_are_refused_by_type(tree: tuple[Path, Path, bytes]) -> None:
    """Kernel filesystems mounted anywhere in the root (a hostPath ``/host/proc``) are
    refused by the type of the descriptor opened, whatever the path; a plain directory
    that happens to be called ``proc`` is read like any other."""
    root, _, secret = tree
    for d in ("host/proc", "srv/sys", "srv/cgroup", "proc/self"):
        (root / d).mkdir(parents=True)
    (root / "proc/self/environ").write_bytes(b"IMAGE=1")
    (root / "etc/alpine-release").symlink_to("/host/proc/self/environ")
    (root / "etc/rel").symlink_to("../srv/sys/kernel")
    mounts = " && ".join(
        [
            f"mount -t proc proc {root}/host/proc",
            f"mount -t sysfs sysfs {root}/srv/sys",
            f"mount -t cgroup2 cgroup2 {root}/srv/cgroup",
        ]
    )
    paths = [
        "/etc/alpine-release",
        "/host/proc/self/environ",
        "/host/proc",
        "/etc/rel/mm",
        "/srv/sys/kernel/uevent_seqnum",
        "/srv/cgroup/cgroup.procs",
        "/host/proc/self/root/etc/hostname",
    ]
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'{mounts} && exec "$0" -c "$@"', sys.executable, PSEUDO_PROBE, str(root), *paths,
         "/proc/self/environ"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout)
    kinds = {"/host/proc": "proc", "/srv/sys": "sysfs", "/srv/cgroup": "cgroup2"}
    for path in paths:
        for call in ("read", "list", "size"):
            message = out[f"{call} {path}"]
            assert "pseudo-filesystem" in message, (call, path, message)
        assert out[f"is_file {path}"] is False
    assert "pseudo-filesystem (proc)" in out["read /etc/alpine-release"]
    for where, kind in kinds.items():
        assert any(f"({kind})" in v for k, v in out.items() if where in k), kind
    assert out["read /proc/self/environ"] == "ok"  # the image's own file named so
    assert secret.decode() not in probe.stdout
