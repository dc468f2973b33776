"""``runtime-insights extract`` with options that point nowhere: one clear line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from extractor.commands.extract import run_extract
from runtime_insights.cli import build_parser


def extract(*argv: str) -> int:
    return run_extract(build_parser().parse_args(["extract", "--no-fingerprints", *argv]))


def test_bogus_cgroup_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert extract("--cgroup-root", str(tmp_path / "nowhere")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        f"runtime-insights extract: cgroup root {str(tmp_path / 'nowhere')!r} is not a directory"
    )


def test_cgroup_root_without_cgroups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert extract("--cgroup-root", str(tmp_path)) == 2
    assert "no cgroup filesystem found" in capsys.readouterr().err


def test_bogus_proc_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert extract("--proc-root", str(tmp_path)) == 2
    assert "is not a proc filesystem" in capsys.readouterr().err


def test_cli_exit_code_and_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime_insights",
            "extract",
            "--proc-root",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
