"""Merging detections and containing failures, with detector doubles on a real process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingerprints.base import Detection, Detector, ProcessView, RootError
from fingerprints.engine import Fingerprinter

PY = os.path.realpath(sys.executable)


@pytest.fixture
def pid() -> Iterator[int]:
    proc = subprocess.Popen([PY, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def const(det: Detection | None) -> Detector:
    def detector(view: ProcessView) -> Detection | None:
        return det

    return detector


def test_first_kind_wins_and_runtimes_merge(pid: int) -> None:
    engine = Fingerprinter(
        detectors=[
            const(None),
            const(Detection(runtimes=[("Flask", None)], extra={"a": 1})),
            const(Detection(kind="Python", kind_version="Python 3.11.2", extra={"a": 2})),
            const(Detection(kind="Other", runtimes=[("Flask", "3.0.0"), ("Jinja", "3.1")])),
            const(Detection(extra={"os": "spoofed", "b": True})),
        ]
    )
    fp = engine.fingerprint("c", [pid])
    truth = platform.freedesktop_os_release()
    assert (fp.os, fp.osVersion) == (truth["ID"], truth.get("VERSION_ID"))
    assert (fp.kind, fp.kindVersion, fp.kindImplementer) == ("Python", "Python 3.11.2", None)
    assert [(r.name, r.version) for r in fp.runtimes] == [("Flask", "3.0.0"), ("Jinja", "3.1")]
    assert fp.extra == {"a": 1, "b": True}
    assert fp.error is None


def test_failing_detectors_are_contained(pid: int) -> None:
    def hostile(view: ProcessView) -> Detection | None:
        raise RootError("/etc/passwd: not a regular file")

    def buggy(view: ProcessView) -> Detection | None:
        known: dict[str, Detection] = {}
        return known[view.comm]

    fp = Fingerprinter(detectors=[hostile, buggy, const(Detection(kind="K"))]).fingerprint(
        "c", [pid]
    )
    assert fp.kind == "K" and fp.os is not None
    assert fp.error is not None
    assert "hostile on pid" in fp.error and "not a regular file" in fp.error
    assert "buggy on pid" in fp.error and "KeyError" in fp.error


def test_byte_budget_stops_the_container(pid: int, tmp_path: Path) -> None:
    calls: list[str] = []

    def greedy(view: ProcessView) -> Detection | None:
        calls.append("greedy")
        for _ in range(1000):  # re-reading counts too, whatever the binary's size
            view.read_exe(0, 8 << 20)
        return Detection(kind="never")

    def later(view: ProcessView) -> Detection | None:
        calls.append("later")
        return Detection(kind="later")

    engine = Fingerprinter(detectors=[greedy, later], max_bytes=1 << 20)
    fp = engine.fingerprint("c", [pid])
    assert fp.error is not None and "byte budget" in fp.error
    assert calls == ["greedy"]
    assert fp.os is not None and fp.kind is None


def test_no_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    fp = Fingerprinter().fingerprint("c", [proc.pid])
    assert fp.error == "no live process to fingerprint"


def test_bad_proc_root_never_raises(tmp_path: Path) -> None:
    fp = Fingerprinter(proc_root=str(tmp_path / "nope")).fingerprint("c", [1])
    assert fp.error is not None and fp.kind is None
