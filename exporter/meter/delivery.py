"""Sending the spool, oldest window first, so that every event is settled exactly once:
delivered, or parked with its reason.

A batch the receiver refuses (``Refused``: 400/422; ``TooLarge``: 413) is halved until
the refused event is alone. That event is not parked at once: a proxy in front of
OpenMeter may refuse for a while (a body limit being changed, a gateway restarting), so
it stays in the spool and is tried again in later rounds, after a growing pause, while
the rest is delivered; only once it has been refused for ``park_after_seconds`` (and at
least ``PARK_AFTER_REFUSALS`` times) is it parked. Anything else that fails
(``Unavailable``) ends the round with everything not delivered kept. Up to ``in_flight``
batches are on their way at once, as OpenMeter's collector sends them (its
``max_in_flight``); ids make the order irrelevant. The log says when delivery fails,
backs off and recovers, naming the receiver and its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from exporter.meter.client import Refused, Unavailable
from exporter.meter.clock import boottime_ns
from exporter.meter.events import Event
from exporter.meter.spool import Pending, Spool

log = logging.getLogger(__name__)

PARK_AFTER_REFUSALS = 3
MAX_PAUSE_SECONDS = 600.0


class Sender(Protocol):
    def describe(self) -> str: ...
    async def send(self, events: list[Event]) -> None: ...
    async def aclose(self) -> None: ...


@dataclass
class _Refusal:
    count: int
    first_ns: int
    next_ns: int
    reason: str


@dataclass
class Outcome:
    delivered: int = 0
    parked: int = 0
    waiting: int = 0
    """Refused events kept for a later round."""
    error: str | None = None


def batches(events: list[Event], size: int) -> Iterator[list[Event]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


@dataclass
class Deliverer:
    spool: Spool
    sender: Sender
    batch_size: int = 100
    in_flight: int = 4
    """Batches sent at once: the receiver parses one while the next is on its way."""
    retry_seconds: float = 30.0
    park_after_seconds: float = 600.0
    clock: Callable[[], int] = boottime_ns
    failing_since: int | None = None
    failed_rounds: int = 0
    refusals: dict[str, _Refusal] = field(default_factory=dict)

    async def round(self) -> Outcome:
        """One pass over the spool; raises nothing but OSError (the spool itself)."""
        out = Outcome()
        try:
            for item in self.spool.pending():
                await self._item(item, out)
        except Unavailable as e:
            out.error = str(e)
            self._failed(out.error)
            return out
        if self.failed_rounds:
            log.warning(
                "meter: delivery to %s recovered after %d failed round(s); %d event(s) delivered",
                self.sender.describe(),
                self.failed_rounds,
                out.delivered,
            )
        self.failing_since, self.failed_rounds = None, 0
        return out

    def _failed(self, error: str) -> None:
        self.failed_rounds += 1
        if self.failing_since is None:
            self.failing_since = self.clock()
        log.warning(
            "meter: delivery to %s postponed (%d event(s) kept, round %d failed, next try in "
            "%.0fs): %s",
            self.sender.describe(),
            self.spool.pending_count,
            self.failed_rounds,
            self.retry_seconds,
            error,
        )

    async def _item(self, item: Pending, out: Outcome) -> None:
        now = self.clock()
        ready = []
        for e in item.events:
            refusal = self.refusals.get(e["id"])
            if refusal is not None and refusal.next_ns > now:
                out.waiting += 1
            else:
                ready.append(e)
        slots = asyncio.Semaphore(self.in_flight)

        async def one(batch: list[Event]) -> set[str]:
            async with slots:
                return await self._send(batch, out)

        results = await asyncio.gather(
            *(one(b) for b in batches(ready, self.batch_size)), return_exceptions=True
        )
        settled: set[str] = set()
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                settled |= result
        self.spool.settle(item, settled)
        if failure is not None:
            raise failure

    async def _send(self, batch: list[Event], out: Outcome) -> set[str]:
        """Ids settled (delivered or parked); a refused batch is halved to find the bad one."""
        try:
            await self.sender.send(batch)
        except Refused as e:
            if len(batch) > 1:
                half = len(batch) // 2
                return await self._send(batch[:half], out) | await self._send(batch[half:], out)
            return self._refused(batch[0], e, out)
        out.delivered += len(batch)
        ids = {event["id"] for event in batch}
        for i in ids:
            self.refusals.pop(i, None)
        return ids

    def _refused(self, event: Event, error: Refused, out: Outcome) -> set[str]:
        now = self.clock()
        reason = f"{self.sender.describe()} refused it: {error}"
        refusal = self.refusals.get(event["id"])
        if refusal is None:
            refusal = self.refusals[event["id"]] = _Refusal(0, now, now, reason)
        refusal.count += 1
        refusal.reason = reason
        waited = (now - refusal.first_ns) / 1e9
        if refusal.count >= PARK_AFTER_REFUSALS and waited >= self.park_after_seconds:
            self.spool.park([event], f"{reason} ({refusal.count} times over {waited:.0f}s)")
            del self.refusals[event["id"]]
            out.parked += 1
            return {event["id"]}
        pause = min(self.retry_seconds * 2 ** (refusal.count - 1), MAX_PAUSE_SECONDS)
        refusal.next_ns = now + int(pause * 1e9)
        out.waiting += 1
        log.warning(
            "meter: event %s refused by %s (%s); kept, tried again in %.0fs",
            event["id"],
            self.sender.describe(),
            error,
            pause,
        )
        return set()
