"""`runtime-insights prepare-spool`: what the DaemonSet's init container runs (no shell in
the image). The integration test runs it from the image with only CAP_CHOWN
(tests/integration/test_image.py); here its arguments and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime_insights.cli import main


def test_hands_the_directory_to_the_owner(tmp_path: Path) -> None:
    spool = tmp_path / "meter"
    spool.mkdir(mode=0o755)
    uid, gid = os.getuid(), os.getgid()  # root may give it away; anyone may keep it
    owner = "65532:65532" if uid == 0 else f"{uid}:{gid}"
    assert main(["prepare-spool", f"--owner={owner}", str(spool)]) == 0
    st = spool.stat()
    assert f"{st.st_uid}:{st.st_gid}" == owner
    assert st.st_mode & 0o7777 == 0o700


@pytest.mark.parametrize("owner", ["nonroot", "65532", "65532:", ":65532", "-1:0", "a:b"])
def test_a_bad_owner_stops_with_one_line_naming_the_option(
    owner: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare-spool", f"--owner={owner}", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--owner" in err


def test_a_symlink_or_a_missing_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    link = tmp_path / "meter"
    link.symlink_to(target)
    for path in (link, tmp_path / "missing"):
        assert main(["prepare-spool", "--owner=0:0", str(path)]) == 2
        assert str(path) in capsys.readouterr().err
    assert target.stat().st_mode & 0o7777 == 0o755  # the link's target was not touched
