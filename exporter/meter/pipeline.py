"""``Meter``: the OpenMeter pipeline as the exporter runs it.

The poll loop hands every new Snapshot to ``observe`` (synchronous, a few file writes):
deltas since the last poll are added to each pod's open window and saved; once
``meter_interval_seconds`` have passed the windows close into CloudEvents, committed to
the spool together with the marks. ``run`` delivers the spool in the background, so a
slow or absent OpenMeter never holds up polling, and nothing is lost while it is away
(up to the spool's cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exporter.lifecycle import Background
from exporter.meter.accrual import PodLookup, accrue, close
from exporter.meter.client import Rejected, Unavailable
from exporter.meter.deltas import compute
from exporter.meter.events import Event
from exporter.meter.spool import MeterState, Spool
from extractor.contract import Snapshot

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, events: list[Event]) -> None: ...
    async def aclose(self) -> None: ...


@dataclass
class MeterStats:
    """Counters for /metrics; all monotonic except ``pending``."""

    windows_closed: int = 0
    events_delivered: int = 0
    delivery_failures: int = 0
    events_parked: int = 0
    events_dropped: int = 0
    pending: int = 0
    pod_windows_lost: int = 0
    counter_resets: int = 0
    spool_errors: int = 0
    stale_snapshots: int = 0


def _batches(events: list[Event], size: int) -> Iterator[list[Event]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def token_source(token: str | None, token_file: str | None) -> Callable[[], str | None]:
    """The token from the setting, or re-read from its file before every request.

    A token file that does not exist means no token: the manifests mount an optional
    Secret, and self-hosted OpenMeter takes none. Any other read error is raised.
    """
    if token_file is not None:
        path = Path(token_file)

        def from_file() -> str | None:
            try:
                return path.read_text().strip() or None
            except FileNotFoundError:
                return None

        return from_file
    return lambda: token


class Meter:
    """Owns a spool and a sender; ``observe`` from the poll loop, ``run`` in a task."""

    def __init__(
        self,
        spool: Spool,
        sender: Sender,
        *,
        source: str = "kubernetes-api",
        event_type: str = "kube-pod-exec-time",
        interval_seconds: float = 60.0,
        batch_size: int = 100,
        retry_seconds: float = 30.0,
    ) -> None:
        self.spool = spool
        self.sender = sender
        self.source = source
        self.event_type = event_type
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        self.state: MeterState = spool.load()
        self.last_error: str | None = None
        self._stats = MeterStats()
        self._wake = asyncio.Event()
        self._loop = Background("meter", self.run)

    def stats(self) -> MeterStats:
        s = self._stats
        s.events_parked = self.spool.parked_events
        s.events_dropped = self.spool.dropped_events
        s.pending = self.spool.pending_count
        return MeterStats(**vars(s))

    def observe(self, snapshot: Snapshot, pods: PodLookup) -> None:
        """Account one pass; a spool write failure is logged and the pass retried next time."""
        marks = self.state.marks
        if marks.taken_at is not None and snapshot.taken_at <= marks.taken_at:
            self._stats.stale_snapshots += 1
            return
        try:
            self._observe(snapshot, pods)
        except OSError as e:
            self._stats.spool_errors += 1
            self.last_error = f"meter spool: {e}"
            log.error("meter: cannot write the spool (%s); this pass is metered later", e)

    def _observe(self, snapshot: Snapshot, pods: PodLookup) -> None:
        outcome = compute(self.state.marks, snapshot)
        open_windows = accrue(self.state.open, outcome.windows, pods, snapshot.node)
        opened = self.state.window_opened_at
        if opened is None:
            opened = snapshot.taken_at
        state = MeterState(
            version=self.state.version,
            marks=outcome.marks,
            open=open_windows,
            window_opened_at=opened,
        )
        if snapshot.taken_at - opened >= self.interval_seconds:
            events = close(open_windows, self.source, self.event_type)
            closed = state.model_copy(update={"open": {}, "window_opened_at": snapshot.taken_at})
            self.state = self.spool.commit(events, closed)
            self._stats.windows_closed += 1
            self._wake.set()
        else:
            self.state = self.spool.save(state)
        self._stats.pod_windows_lost += outcome.vanished_pods
        self._stats.counter_resets += outcome.resets

    async def deliver_once(self) -> bool:
        """Send what the spool holds, oldest first; False if OpenMeter was not reachable."""
        try:
            for item in self.spool.pending():
                done: set[str] = set()
                for batch in _batches(item.events, self.batch_size):
                    done |= await self._send(batch)
                    self.spool.settle(item, done)
        except Unavailable as e:
            self._stats.delivery_failures += 1
            self.last_error = str(e)
            log.warning("meter: delivery postponed: %s", e)
            return False
        self.last_error = None
        return True

    async def _send(self, batch: list[Event]) -> set[str]:
        """Ids settled (delivered or parked); a refused batch is halved to find the bad one."""
        try:
            await self.sender.send(batch)
        except Rejected as e:
            if len(batch) == 1:
                self.spool.park(batch, str(e))
                return {batch[0]["id"]}
            half = len(batch) // 2
            return await self._send(batch[:half]) | await self._send(batch[half:])
        self._stats.events_delivered += len(batch)
        return {e["id"] for e in batch}

    async def run(self) -> None:
        """Deliver forever: right after each closed window, and again after failures."""
        while True:
            try:
                ok = await self.deliver_once()
            except OSError as e:
                self._stats.spool_errors += 1
                self.last_error = f"meter spool: {e}"
                log.error("meter: spool unreadable: %s", e)
                ok = False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                timeout = self.interval_seconds if ok else self.retry_seconds
                await asyncio.wait_for(self._wake.wait(), timeout)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop delivering; what is unsent stays in the spool for the next start."""
        await self._loop.stop()
        await self.sender.aclose()
        self.spool.close()
