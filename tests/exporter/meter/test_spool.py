"""The meter's spool on disk: atomic commits, recovery after a crash, hostile files."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.meter import spool as spool_module
from exporter.meter.deltas import Marks, PodMark
from exporter.meter.spool import MeterState, Spool, SpoolError


def state(at: float) -> MeterState:
    return MeterState(marks=Marks(taken_at=at, pods={"u": PodMark(at=at, cpu_ns=int(at))}))


def event(i: int) -> dict[str, object]:
    return {"id": f"e{i}", "source": "s", "specversion": "1.0", "type": "t", "subject": "x"}


def test_a_crash_between_the_window_file_and_state_json_keeps_the_window_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.save(state(10.0))
    real = spool_module.write_atomically

    def state_json_fails(path: Path, data: bytes) -> None:
        if path.name == "state.json":
            raise OSError(5, "Input/output error")
        real(path, data)

    monkeypatch.setattr(spool_module, "write_atomically", state_json_fails)
    committed = s.commit([event(1), event(2)], state(70.0))
    s.close()
    monkeypatch.setattr(spool_module, "write_atomically", real)
    again = Spool(tmp_path, 1 << 20)
    loaded = again.load()
    # state.json still says 10.0; the window file is newer and wins
    assert loaded == committed and loaded.marks.taken_at == 70.0
    (item,) = again.pending()
    again.settle(item, {"e1", "e2"})
    assert again.pending() == []
    # the window file is gone, so state.json was brought up to its marks first
    assert MeterState.model_validate_json((tmp_path / "state.json").read_bytes()) == committed
    again.close()


def test_partial_delivery_rewrites_the_window_file(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.commit([event(i) for i in range(4)], state(1.0))
    (item,) = s.pending()
    s.settle(item, {"e0", "e2"})
    assert [e["id"] for e in s.pending()[0].events] == ["e1", "e3"]
    assert s.pending_count == 2
    s.close()


def test_unreadable_files_are_set_aside_not_crashed_on(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.load()
    s.commit([event(1)], state(5.0))
    s.close()
    (tmp_path / "state.json").write_bytes(b'{"version": "garbage')
    (tmp_path / "pending" / "00000000000000000099.json").write_bytes(b"\x00\xff not json")
    (tmp_path / ".state.json.123.abcd.tmp").write_bytes(b"half a write")
    again = Spool(tmp_path, 1 << 20)
    loaded = again.load()
    assert loaded.marks.taken_at == 5.0  # recovered from the intact window file
    names = sorted(p.name for p in (tmp_path / "poison").iterdir())
    assert len(names) == 2 and all(n.startswith("unreadable-") for n in names)
    assert not (tmp_path / ".state.json.123.abcd.tmp").exists()
    assert [p.version for p in again.pending()] == [loaded.version]
    again.close()


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match=r"meter spool .*/file/spool: Not a directory"):
        Spool(tmp_path / "file" / "spool", 1 << 20)
