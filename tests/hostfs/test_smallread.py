"""KeptFiles: files kept open across passes, alone or in groups read in one step.

Regular files stand in for the kernel's (a pread at offset 0 re-reads either); what
matters here is which descriptor is read, kept or closed, and that a group never reads
through a descriptor that was closed (and whose number the next open may reuse).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostfs import KeptFiles


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def files(tmp_path: Path, *names: str) -> tuple[str, ...]:
    for name in names:
        (tmp_path / name).write_text(f"{name} 1\n")
    return tuple(str(tmp_path / n) for n in names)


def test_a_group_reads_what_single_reads_kept(tmp_path: Path) -> None:
    paths = files(tmp_path, "a", "b", "c")
    kept = KeptFiles(16)
    try:
        assert kept.read_group(paths) is None  # nothing kept yet
        assert [kept.read(p) for p in paths] == [b"a 1\n", b"b 1\n", b"c 1\n"]
        (tmp_path / "b").write_text("b 2\n")  # same file, new contents: read again
        assert kept.read_group(paths) == [b"a 1\n", b"b 2\n", b"c 1\n"]
        assert len(kept) == 3
    finally:
        kept.close()


def test_groups_unread_in_a_pass_are_closed_kept_ones_stay(tmp_path: Path) -> None:
    before = open_fds()
    read, kept_only, dropped = (files(tmp_path, *(f"{g}{i}" for i in range(2))) for g in "xyz")
    kept = KeptFiles(16)
    try:
        for p in (*read, *kept_only, *dropped):
            kept.read(p)
        for group in (read, kept_only, dropped):
            assert kept.read_group(group) is not None
        kept.end_pass()
        assert len(kept) == 6  # all three groups were read in that pass
        assert kept.read_group(read) is not None
        kept.keep_group(kept_only)
        kept.end_pass()
        assert len(kept) == 4  # the group neither read nor kept is closed
        assert kept.read_group(dropped) is None
        assert kept.read_group(kept_only) is not None
    finally:
        kept.close()
    assert open_fds() == before


def test_a_vanished_file_leaves_no_group_behind(tmp_path: Path) -> None:
    """A kept /proc file of a process that exits fails (ESRCH), as a removed cgroup's
    files do: the group read says so, the single read closes it, and the group is gone
    with it, so no later group read uses that number, which the next open may get."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    paths = (f"/proc/{child.pid}/stat", *files(tmp_path, "p"))
    kept = KeptFiles(16)
    try:
        for p in paths:
            kept.read(p)
        assert kept.read_group(paths) is not None
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        assert kept.read_group(paths) is None
        with pytest.raises(FileNotFoundError):
            kept.read(paths[0])
        reuse = os.open(paths[1], os.O_RDONLY)  # likely the number just closed
        try:
            assert kept.read_group(paths) is None
            assert len(kept) == 1
        finally:
            os.close(reuse)
    finally:
        kept.close()


def test_capacity_bounds_kept_descriptors(tmp_path: Path) -> None:
    paths = files(tmp_path, "m", "n", "o")
    kept = KeptFiles(2)
    try:
        assert [kept.read(p) for p in paths] == [b"m 1\n", b"n 1\n", b"o 1\n"]
        assert len(kept) == 2
        assert kept.read_group(paths) is None  # "o" could not be kept: never a group
    finally:
        kept.close()


def test_files_beyond_a_full_pool_are_read_by_path_and_counted(tmp_path: Path) -> None:
    paths = files(tmp_path, "a", "b")
    kept = KeptFiles(1)
    try:
        assert kept.read_beyond(paths) == [b"a 1\n", b"b 1\n"]  # two cannot fit in one
        assert len(kept) == 0  # nothing kept by it
        assert kept.read_beyond(paths[:1]) is None  # room for this one: read() keeps it
        (tmp_path / "b").unlink()
        assert kept.read_beyond(paths) is None  # a failed read says nothing: read() will
        kept.keep_group(paths[:1])  # not kept, not read this pass: wanted all the same
        kept.end_pass()
        assert kept.wanted == 3  # what the pass read by path or passed over counts as wanted
    finally:
        kept.close()
