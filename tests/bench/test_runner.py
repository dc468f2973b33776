"""``python -m bench``: a crashing bench never stops the others, and the run names it."""

from __future__ import annotations

import sys
import types

import pytest

import bench.__main__ as runner
from bench.rounds import SMOKE_ENV, rounds


def _module(name: str, main: object, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType(f"bench.{name}")
    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"bench.{name}", module)


def test_every_bench_runs_and_each_failure_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    def crash() -> int:
        ran.append("crash")
        raise AttributeError("'_Pods' object has no attribute 'generation'")

    def missed() -> int:
        ran.append("missed")
        return 1

    def fine() -> int:
        ran.append("fine")
        return 0

    for name, main in (("bench_a_crash", crash), ("bench_b_missed", missed), ("bench_c_ok", fine)):
        _module(name, main, monkeypatch)
    names = ["bench_a_crash", "bench_b_missed", "bench_c_ok"]
    assert runner.main(names) == 1
    assert ran == ["crash", "missed", "fine"]
    out = capsys.readouterr().out
    assert "bench failed: bench_a_crash: AttributeError: '_Pods' object" in out
    assert "bench failed: bench_b_missed: missed its goal" in out
    assert "bench failed: bench_c_ok" not in out and "== bench_c_ok: ok" in out


def test_smoke_runs_a_few_rounds_and_fails_only_on_a_crash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(SMOKE_ENV, raising=False)
    assert rounds(15) == 15
    seen: list[int] = []

    def measures() -> int:
        seen.append(rounds(15))
        return 1  # a goal missed in two rounds on a busy machine

    _module("bench_measures", measures, monkeypatch)
    assert runner.main(["--smoke", "bench_measures"]) == 0
    assert seen == [2]
    assert "goal missed in a smoke run" in capsys.readouterr().out
    _module("bench_broken", lambda: 1 / 0, monkeypatch)
    assert runner.main(["--smoke", "bench_measures", "bench_broken"]) == 1
    assert "bench failed: bench_broken: ZeroDivisionError" in capsys.readouterr().out
