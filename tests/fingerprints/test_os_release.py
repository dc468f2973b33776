"""OS detection over prepared roots and over this machine's own root.

The host case is checked against Python's own os-release reader
(``platform.freedesktop_os_release``). Fixture contents follow os-release(5), the
distributions' published files (e.g. UBI 8: ``ID="rhel"``/``VERSION_ID="8.10"``) and
GoogleContainerTools/distroless ``common/variables.bzl`` (PRETTY_NAME "Distroless").
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from fingerprints.detectors.os_release import OsInfo, detect_os, parse_os_release
from fingerprints.reading.rootfs import Budget, BudgetExceeded, ConfinedRoot


def make_root(tmp_path: Path, files: dict[str, str]) -> ConfinedRoot:
    root = tmp_path / "root"
    root.mkdir()
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("->"):
            target.symlink_to(content[2:])
        else:
            target.write_text(content)
    return ConfinedRoot(str(root))


def test_host_root_matches_python_reader() -> None:
    truth = platform.freedesktop_os_release()
    info = detect_os(ConfinedRoot("/"))
    assert info is not None
    assert (info.id, info.version) == (truth["ID"], truth.get("VERSION_ID"))


UBI8 = """NAME="Red Hat Enterprise Linux"
VERSION="8.10 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.10"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.10 (Ootpa)"
"""
ALPINE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.2\nPRETTY_NAME="Alpine Linux v3.20"\n'
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n'
DISTROLESS = (
    'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\n'
    'HOME_URL="https://github.com/GoogleContainerTools/distroless"\n'
)


@pytest.mark.parametrize(
    "files,expected",
    [
        ({"/etc/os-release": UBI8}, OsInfo("rhel", "8.10")),
        (
            {"/etc/os-release": ALPINE, "/etc/alpine-release": "3.20.9\n"},
            OsInfo("alpine", "3.20.2"),
        ),
        (
            {"/usr/lib/os-release": UBUNTU, "/etc/os-release": "->/usr/lib/os-release"},
            OsInfo("ubuntu", "24.04"),
        ),
        ({"/usr/lib/os-release": UBUNTU}, OsInfo("ubuntu", "24.04")),
        ({"/etc/os-release": "NAME=Arch\nBUILD_ID=rolling\n"}, OsInfo("linux", "rolling")),
        ({"/etc/os-release": DISTROLESS}, OsInfo("debian", "12", {"osVariant": "distroless"})),
        ({"/etc/alpine-release": "3.19.1\n"}, OsInfo("alpine", "3.19.1")),
        (
            {"/etc/redhat-release": "CentOS Linux release 7.9.2009 (Core)\n"},
            OsInfo("centos", "7.9.2009"),
        ),
        (
            {"/etc/redhat-release": "Red Hat Enterprise Linux release 8.10 (Ootpa)\n"},
            OsInfo("rhel", "8.10"),
        ),
        ({"/etc/debian_version": "12.11\n"}, OsInfo("debian", "12")),
        (
            {
                "/etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\n",
                "/etc/debian_version": "bookworm/sid\n",
            },
            OsInfo("ubuntu", "22.04"),
        ),
        ({"/etc/system-release": "Amazon Linux release 2 (Karoo)\n"}, OsInfo("amzn", "2")),
        ({"/etc/debian_version": "trixie/sid\n"}, OsInfo("debian", None)),
        (
            {
                "/var/lib/dpkg/status.d/base-files": "Package: base-files\nVersion: 12.4+deb12u5\n",
                "/var/lib/dpkg/status.d/base-files.md5sums": "x  etc/debian_version\n",
                "/var/lib/dpkg/status.d/tzdata": "Package: tzdata\nVersion: 2024a-0+deb12u1\n",
            },
            OsInfo("debian", "12", {"osVariant": "distroless"}),
        ),
        ({"/app/server": "binary"}, None),
    ],
)
def test_release_files(tmp_path: Path, files: dict[str, str], expected: OsInfo | None) -> None:
    assert detect_os(make_root(tmp_path, files)) == expected


def test_absolute_symlink_reads_the_container_file_not_the_host(tmp_path: Path) -> None:
    """The classic escape: /etc/os-release -> /usr/lib/os-release must stay in the root."""
    root = make_root(
        tmp_path,
        {"/etc/os-release": "->/usr/lib/os-release", "/usr/lib/os-release": ALPINE},
    )
    assert detect_os(root) == OsInfo("alpine", "3.20.2")


def test_fifo_os_release_falls_back_without_blocking(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"/etc/debian_version": "11.9\n"})
    (tmp_path / "root" / "etc" / "os-release").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "root" / "etc" / "os-release")
    assert detect_os(root) == OsInfo("debian", "11")


def test_budget_exhaustion_is_not_a_fallback(tmp_path: Path) -> None:
    make_root(tmp_path, {"/etc/os-release": UBI8})
    with pytest.raises(BudgetExceeded):
        detect_os(ConfinedRoot(str(tmp_path / "root"), Budget(max_seconds=0)))


def test_parse_quoting_rules() -> None:
    text = (
        '# comment\n\nA=plain\nB="double \\"q\\" \\$x \\\\ \\`"\nC=\'single \\"\'\n'
        'D="unterminated\nnoequals\n E = spaced \n'
    )
    assert parse_os_release(text) == {
        "A": "plain",
        "B": 'double "q" $x \\ `',
        "C": 'single \\"',
        "D": '"unterminated',
        "E": "spaced",
    }
