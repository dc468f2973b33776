"""State.refresh: a reading whose pass is recent, one fetch shared by every concurrent
refresh and by the poll, each snapshot recorded (and observed) exactly once, in order."""

from __future__ import annotations

import asyncio
import time

from exporter.node.state import State
from extractor.contract import FRESH_FLOOR_SECONDS, Snapshot


def snap(taken_at: float) -> Snapshot:
    return Snapshot(node="node-a", taken_at=taken_at, cgroup_version="v2")


class Extractor:
    """Answers each fetch with a snapshot taken now, once released."""

    def __init__(self) -> None:
        self.asked: list[float | None] = []
        self.release = asyncio.Event()
        self.release.set()
        self.held: Snapshot | None = None

    async def __call__(self, max_age: float | None = None) -> Snapshot:
        self.asked.append(max_age)
        await self.release.wait()
        if max_age is None and self.held is not None:
            return self.held  # no new pass for a plain poll: the very object again
        self.held = snap(time.time())
        return self.held


async def test_a_recent_reading_needs_no_fetch() -> None:
    extractor = Extractor()
    state = State(extractor)
    state.record(snap(time.time()))
    reading = await state.refresh(max_age=5.0)
    assert reading is state.reading and extractor.asked == []


async def test_concurrent_refreshes_and_the_poll_share_one_fetch() -> None:
    extractor = Extractor()
    seen: list[Snapshot] = []
    state = State(extractor, observers=[seen.append])
    state.record(snap(time.time() - 60.0))
    extractor.release.clear()
    refreshes = [asyncio.create_task(state.refresh(max_age=1.0)) for _ in range(5)]
    poll = asyncio.create_task(state.poll_once())
    await asyncio.sleep(0.05)
    extractor.release.set()
    readings = {id(await r) for r in refreshes}
    assert await poll is True
    assert extractor.asked == [1.0]
    assert len(readings) == 1 and state.version == 2
    assert len(seen) == 2 and seen[-1] is state.snapshot


async def test_a_refresh_asked_while_an_old_poll_is_in_flight_gets_a_newer_pass() -> None:
    extractor = Extractor()
    state = State(extractor)
    state.record(snap(time.time() - 60.0))
    extractor.release.clear()
    extractor.held = snap(time.time() - 30.0)  # the poll in flight answers this old one
    poll = asyncio.create_task(state.poll_once())
    await asyncio.sleep(0.02)
    refresh = asyncio.create_task(state.refresh(max_age=0.0))
    await asyncio.sleep(0.02)
    extractor.release.set()
    reading = await refresh
    await poll
    assert extractor.asked == [None, 0.0]
    assert reading is not None and reading.snapshot.taken_at >= time.time() - 5.0
    assert state.version == 3  # the old poll's snapshot, then the fresh one


async def test_the_same_snapshot_fetched_again_is_not_recorded_twice() -> None:
    extractor = Extractor()
    seen: list[Snapshot] = []
    state = State(extractor, observers=[seen.append])
    await state.poll_once()
    await state.poll_once()
    assert len(seen) == 1 and state.version == 1 and state.passes == 2


async def test_an_unreachable_extractor_leaves_the_last_reading() -> None:
    async def down(max_age: float | None = None) -> Snapshot:
        raise OSError("no socket")

    state = State(down)
    old = state.record(snap(time.time() - 60.0))
    assert await state.refresh(max_age=FRESH_FLOOR_SECONDS) is old
    assert state.errors == 1 and state.last_error == "no socket"
