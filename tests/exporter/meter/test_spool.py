"""The meter's spool on disk: atomic commits, recovery after a crash, hostile files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.meter.deltas import Marks, PodMark
from exporter.meter.spool import MeterState, Spool, SpoolError


def state(at: float) -> MeterState:
    mark = PodMark(at=at, at_ns=int(at * 1e9), seen_ns=int(at * 1e9), cpu_ns=int(at))
    return MeterState(marks=Marks(taken_at=at, taken_ns=int(at * 1e9), pods={"u": mark}))


def event(i: int) -> dict[str, object]:
    return {"id": f"e{i}", "source": "s", "specversion": "1.0", "type": "t", "subject": "x"}


def test_a_crash_right_after_a_commit_keeps_the_window_and_its_marks(tmp_path: Path) -> None:
    """The closed window's events and the state after it appear together; state.json is
    only rewritten at the next poll, so a crash in between must still find the newer one."""
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.save(state(10.0))
    committed = s.commit([event(1), event(2)], state(70.0))
    s.close()  # killed before the next poll
    again = Spool(tmp_path, 1 << 20)
    loaded = again.load()
    assert loaded == committed and loaded.marks.taken_at == 70.0
    assert again.pending_count == 2
    (item,) = again.pending()
    again.settle(item, {"e1", "e2"})
    assert list(again.pending()) == [] and again.pending_count == 0
    # the window's directory is gone, so state.json was brought up to its marks first
    assert MeterState.model_validate_json((tmp_path / "state.json").read_bytes()) == committed
    again.close()


def test_a_crash_inside_a_commit_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.save(state(10.0))
    real = os.rename

    def dies(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", dies)
    with pytest.raises(OSError):
        s.commit([event(1)], state(70.0))
    monkeypatch.setattr(os, "rename", real)
    s.close()
    again = Spool(tmp_path, 1 << 20)
    assert again.load().marks.taken_at == 10.0 and list(again.pending()) == []
    assert list((tmp_path / "pending").iterdir()) == []
    again.close()


def test_partial_delivery_is_remembered_without_rewriting_the_window(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.commit([event(i) for i in range(4)], state(1.0))
    (item,) = s.pending()
    size = (item.path / "events.json").stat().st_size
    s.settle(item, {"e0", "e2"})
    (left,) = s.pending()
    assert [e["id"] for e in left.events] == ["e1", "e3"] and s.pending_count == 2
    assert (item.path / "events.json").stat().st_size == size
    s.close()


def test_older_windows_keep_only_their_events_once_state_json_is_newer(tmp_path: Path) -> None:
    """OpenMeter away for hours must not keep a copy of the whole state per window."""
    s = Spool(tmp_path, 1 << 30)
    s.load()
    for i in range(5):
        s.commit([event(i)], state(float(i)))
    s.save(state(9.0))
    states = list((tmp_path / "pending").glob("*/state.json"))
    assert states == [] and len(list((tmp_path / "pending").iterdir())) == 5
    assert s.pending_count == 5 and s.pending_bytes > 0
    s.close()


def test_the_spool_is_full_at_its_cap_and_never_drops_a_window(tmp_path: Path) -> None:
    s = Spool(tmp_path, 600)
    s.load()
    version = 0
    while not s.full:
        version += 1
        s.commit([event(version)], state(float(version)))
    assert s.pending_count == version and s.dropped_events == 0
    for item in s.pending():
        s.settle(item, {e["id"] for e in item.events})
    assert not s.full and s.pending_bytes == 0
    s.close()


def test_unreadable_files_are_set_aside_not_crashed_on(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.commit([event(1)], state(5.0))
    s.close()
    (tmp_path / "state.json").write_bytes(b'{"version": "garbage')
    bad = tmp_path / "pending" / "00000000000000000099"
    bad.mkdir()
    (bad / "events.json").write_bytes(b"\x00\xff not json")
    (tmp_path / ".state.json.123.abcd.tmp").write_bytes(b"half a write")
    again = Spool(tmp_path, 1 << 20)
    loaded = again.load()
    assert loaded.marks.taken_at == 5.0  # recovered from the intact window
    names = sorted(p.name for p in (tmp_path / "poison").iterdir())
    assert len(names) == 2 and all(n.startswith("unreadable-") for n in names)
    assert again.dropped_events == 1
    assert not (tmp_path / ".state.json.123.abcd.tmp").exists()
    assert [p.version for p in again.pending()] == [loaded.version]
    again.close()


def test_parked_events_are_counted_again_after_a_restart(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    where = s.park([event(1), event(2)], "refused")
    assert where.parent == tmp_path / "poison" and s.parked_events == 2
    s.close()
    again = Spool(tmp_path, 1 << 20)
    again.load()
    assert again.parked_events == 2
    again.close()


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match=r"meter spool .*/file/spool: Not a directory"):
        Spool(tmp_path / "file" / "spool", 1 << 20)


def test_a_second_exporter_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20)
    with pytest.raises(SpoolError, match="in use by another exporter"):
        Spool(tmp_path, 1 << 20)
    first.close()
    Spool(tmp_path, 1 << 20).close()
