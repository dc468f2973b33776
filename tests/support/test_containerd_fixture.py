"""The real-containerd fixture says why it cannot run instead of failing."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import containerd


def test_not_root_is_a_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert containerd.skip_reason() == "needs root (real containerd, cgroups)"


def test_missing_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "runc" else real(name))
    reason = containerd.skip_reason()
    assert reason is not None and reason.startswith("missing runc")


def test_burner_loop_is_bounded() -> None:
    argv = containerd.burner_argv(123)
    assert argv[:2] == ["/bin/sh", "-c"] and "-lt 123" in argv[2]
    assert argv[2].endswith("exec sleep 100000")


def test_ids_look_like_containerd_ids() -> None:
    ids = {containerd.new_container_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)
