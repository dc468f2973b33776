"""The exporter's memory of the node: each snapshot recorded once into a ``Reading``.

Requests never wait for the extractor: a poll loop refreshes the state in the
background and handlers read the current ``Reading`` — the latest snapshot, the one
before, their CPU rates and a version number — which never changes once made, so a
handler reads one consistent moment. A handler that must answer about the containers
running *now* asks for ``refresh``: a fresh pass, shared with concurrent refreshes and
with the poll (one fetch is in flight at a time, so snapshots are recorded in order).
Rates need two snapshots; they are computed once per pass (Δusage / Δtime) and never
across a counter that went backwards (a cgroup recreated under the same name).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from exporter.lifecycle import Background
from extractor.contract import FRESH_FLOOR_SECONDS, Snapshot, Usage

log = logging.getLogger(__name__)


class Fetch(Protocol):
    """The extractor's latest snapshot (``ExtractorClient.fetch``); with ``max_age``, one
    whose pass started at most that long ago. Returns the very object it returned
    before when there has been no pass since."""

    def __call__(self, max_age: float | None = None) -> Awaitable[Snapshot]: ...


Observer = Callable[[Snapshot], None]


@dataclass(frozen=True)
class Rates:
    """CPU cores used between the previous and the latest snapshot."""

    window_seconds: float
    containers: dict[str, float] = field(default_factory=dict)
    pods: dict[str, float] = field(default_factory=dict)


def _usage_ns(usage: Usage | None) -> int | None:
    return usage.cpu.usage_ns if usage is not None and usage.cpu is not None else None


def _rate(before: int | None, after: int | None, seconds: float) -> float | None:
    if before is None or after is None or after < before:
        return None
    return (after - before) / 1e9 / seconds


def _rates(
    before: Iterable[tuple[str, Usage | None]],
    after: Iterable[tuple[str, Usage | None]],
    seconds: float,
) -> dict[str, float]:
    """Cores per key present before and after, where the counter did not go back."""
    then = {key: _usage_ns(usage) for key, usage in before}
    out: dict[str, float] = {}
    for key, usage in after:
        if key in then and (r := _rate(then[key], _usage_ns(usage), seconds)) is not None:
            out[key] = r
    return out


def compute_rates(previous: Snapshot, current: Snapshot) -> Rates | None:
    """Rates per container id and pod uid present in both snapshots; None if time ran back."""
    window = current.taken_at - previous.taken_at
    if window <= 0:
        return None
    return Rates(
        window_seconds=window,
        containers=_rates(
            ((c.id, c.usage) for c in previous.containers),
            ((c.id, c.usage) for c in current.containers),
            window,
        ),
        pods=_rates(
            ((p.uid, p.usage) for p in previous.pods),
            ((p.uid, p.usage) for p in current.pods),
            window,
        ),
    )


@dataclass(frozen=True)
class Reading:
    """One recorded snapshot with what is derived from it; ``version`` counts recordings."""

    snapshot: Snapshot
    previous: Snapshot | None
    rates: Rates | None
    version: int

    def cpu_rate(self, container_id: str) -> float | None:
        return self.rates.containers.get(container_id) if self.rates else None

    def pod_cpu_rate(self, pod_uid: str) -> float | None:
        return self.rates.pods.get(pod_uid) if self.rates else None


class State:
    """The current Reading plus pass counters."""

    def __init__(
        self,
        fetch: Fetch | None = None,
        poll_interval_seconds: float = 10.0,
        observers: list[Observer] | None = None,
    ) -> None:
        self._fetch = fetch
        self.poll_interval_seconds = poll_interval_seconds
        self.observers: list[Observer] = list(observers or ())
        self.reading: Reading | None = None
        self.passes = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.refreshes = 0
        self._inflight: asyncio.Task[bool] | None = None
        self._loop = Background("state-poll", self.run)

    @property
    def snapshot(self) -> Snapshot | None:
        return self.reading.snapshot if self.reading is not None else None

    @property
    def previous(self) -> Snapshot | None:
        return self.reading.previous if self.reading is not None else None

    @property
    def rates(self) -> Rates | None:
        return self.reading.rates if self.reading is not None else None

    @property
    def version(self) -> int:
        return self.reading.version if self.reading is not None else 0

    def record(self, snapshot: Snapshot) -> Reading:
        """Make ``snapshot`` current; the one it replaces becomes the base for rates.

        Observers (the meter) see every snapshot exactly once, in order; one that fails is
        logged and does not keep the snapshot from being served.
        """
        previous = self.snapshot
        rates = compute_rates(previous, snapshot) if previous is not None else None
        self.reading = reading = Reading(snapshot, previous, rates, self.version + 1)
        self.last_success = time.time()
        for observe in self.observers:
            try:
                observe(snapshot)
            except Exception:
                log.exception("snapshot observer %r failed", observe)
        return reading

    async def poll_once(self) -> bool:
        """One pass; a failure is counted and remembered, the old snapshot stays served.
        While a refresh is fetching, the poll shares it instead of asking again."""
        return await self._fetching(None)

    async def refresh(self, max_age: float = 1.0) -> Reading | None:
        """A reading whose pass started at most ``max_age`` seconds ago (never less than
        ``FRESH_FLOOR_SECONDS``, which bounds the passes any number of callers cause), or
        the latest one if the extractor cannot be reached. At most two fetches: the one
        in flight when asked may be older than that, the next one is not."""
        cutoff = time.time() - max(max_age, FRESH_FLOOR_SECONDS)
        for _ in range(2):
            reading = self.reading
            if reading is not None and reading.snapshot.taken_at >= cutoff:
                return reading
            self.refreshes += 1
            if not await self._fetching(max_age):
                break
        return self.reading

    async def _fetching(self, max_age: float | None) -> bool:
        """Join the fetch in flight, or start one; the fetch itself cannot be cancelled
        by a caller going away (what it fetched is recorded either way)."""
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.create_task(self._poll(max_age))
            task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _poll(self, max_age: float | None) -> bool:
        if self._fetch is None:
            raise RuntimeError("this State has no snapshot source")
        self.passes += 1
        try:
            snapshot = await (self._fetch() if max_age is None else self._fetch(max_age))
        except Exception as e:
            self.errors += 1
            self.last_error = str(e) or type(e).__name__
            log.warning("snapshot pass failed: %s", self.last_error)
            return False
        if snapshot is not self.snapshot:  # the same object: no pass since the last fetch
            self.record(snapshot)
        else:
            self.last_success = time.time()
        self.last_error = None
        return True

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_interval_seconds)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
