"""``Meter``: the usage pipeline as the exporter runs it.

The poll loop hands every new Snapshot to ``observe`` (synchronous, a few file writes):
readings since the last poll are added to each pod's open window and saved; once
``interval_seconds`` have passed on the boot clock the windows close into CloudEvents,
each checked against the ingest schema, committed to the spool together with the marks.
``run`` delivers the spool in the background, so a slow or absent receiver never holds
up polling. While the spool is full, windows are not closed: the counters keep counting
in the open windows and nothing billed is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import orjson

from exporter.lifecycle import Background
from exporter.meter.accrual import OpenWindow, PodLookup, accrue
from exporter.meter.billing import Billing, decide
from exporter.meter.clock import ns
from exporter.meter.delivery import Deliverer, Sender
from exporter.meter.deltas import compute
from exporter.meter.events import Event, build
from exporter.meter.schema import problem
from exporter.meter.spool import Ledger, MeterState, Spool
from extractor.contract import Snapshot

log = logging.getLogger(__name__)


@dataclass
class MeterStats:
    """Counters for /metrics; all monotonic except the gauges ``pending`` and
    ``spool_full``."""

    windows_closed: int = 0
    events_delivered: int = 0
    delivery_failures: int = 0
    events_parked: int = 0
    events_invalid: int = 0
    events_dropped: int = 0
    pending: int = 0
    pod_windows_lost: int = 0
    counter_resets: int = 0
    spool_errors: int = 0
    stale_snapshots: int = 0
    pods_not_billed: int = 0
    spool_full: int = 0


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


def _snapshot_ns(snapshot: Snapshot) -> int:
    boot = snapshot.taken_boottime
    return ns(boot if boot is not None else snapshot.taken_at)


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
        billing: Billing | None = None,
        batch_period_seconds: float = 0.0,
        metadata_expected: bool = False,
        park_after_seconds: float = 600.0,
        in_flight: int = 4,
        debug: bool = False,
    ) -> None:
        self.spool = spool
        self.sender = sender
        self.billing = billing or Billing(source=source, event_type=event_type)
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.batch_period_seconds = batch_period_seconds
        self.retry_seconds = retry_seconds
        self.metadata_expected = metadata_expected
        self.debug = debug
        self.state: MeterState = spool.load()
        self.last_error: str | None = None
        self.deliverer = Deliverer(
            spool,
            sender,
            batch_size=batch_size,
            in_flight=in_flight,
            retry_seconds=retry_seconds,
            park_after_seconds=park_after_seconds,
        )
        self._stats = MeterStats(events_parked=spool.parked_events)
        self._wake = asyncio.Event()
        self._loop = Background("meter", self.run)

    @property
    def source(self) -> str:
        return self.billing.source

    def describe(self) -> str:
        """One line for the start log: what is metered, how, and where it goes."""
        b = self.billing
        what = ", ".join(sorted(b.namespaces)) if b.namespaces else "all namespaces"
        if b.selector.requirements:
            what += f", labels matching {_selector_text(b)}"
        if b.opt_in_label:
            what += f", pods labelled {b.opt_in_label}"
        return (
            f"metering on: mode {b.mode}, one event per {b.per} every "
            f"{self.interval_seconds:g}s, {what}; events go to {self.sender.describe()} "
            f"through the spool {self.spool.directory}"
        )

    def stats(self) -> MeterStats:
        s = self._stats
        s.events_parked = self.spool.parked_events
        s.events_dropped = self.spool.dropped_events
        s.pending = self.spool.pending_count
        s.spool_full = int(self.spool.full)
        return MeterStats(**vars(s))

    def problems(self) -> list[tuple[str, str]]:
        """What /readyz reports, as (stable code, text): delivery postponed, events parked
        or set aside, a full spool."""
        out: list[tuple[str, str]] = []
        spool = self.spool
        if self.last_error:
            out.append(
                (
                    "meter-postponed",
                    f"usage events not delivered ({spool.pending_count} kept in "
                    f"{spool.pending_dir}): {self.last_error}",
                )
            )
        if spool.parked_events:
            out.append(
                (
                    "meter-parked",
                    f"{spool.parked_events} usage event(s) parked in {spool.poison_dir}",
                )
            )
        if spool.dropped_events:
            out.append(
                (
                    "meter-set-aside",
                    f"{spool.dropped_events} unreadable spool file(s) set aside in "
                    f"{spool.poison_dir}",
                )
            )
        if spool.full:
            out.append(
                (
                    "meter-spool-full",
                    f"meter spool full ({spool.pending_bytes} bytes of undelivered events): "
                    "windows stay open until delivery makes room",
                )
            )
        return out

    # -- metering

    def observe(self, snapshot: Snapshot, pods: PodLookup) -> None:
        """Account one pass; a spool write failure is logged and the pass retried next time."""
        marks = self.state.marks
        now_ns = _snapshot_ns(snapshot)
        same_boot = marks.taken_ns is None or marks.boot_id == snapshot.boot_id
        if marks.taken_ns is not None and same_boot and now_ns <= marks.taken_ns:
            self._stats.stale_snapshots += 1
            return
        collecting = gc.isenabled()
        gc.disable()  # thousands of acyclic objects per pass: no use walking the heap for cycles
        try:
            self._observe(snapshot, pods, now_ns, same_boot)
        except OSError as e:
            self._stats.spool_errors += 1
            self.last_error = f"meter spool: {e}"
            log.error("meter: cannot write the spool (%s); this pass is metered later", e)
        finally:
            if collecting:
                gc.enable()

    def _observe(self, snapshot: Snapshot, pods: PodLookup, now_ns: int, same_boot: bool) -> None:
        outcome = compute(self.state.marks, snapshot)
        open_windows = accrue(self.state.open, outcome.readings, pods)
        opened_ns = self.state.window_opened_ns
        if opened_ns is None:
            opened_ns = now_ns
        ledgers = _prune(self.state.ledgers, outcome.marks.pods.keys(), open_windows)
        state = self.state.model_copy(
            update={
                "marks": outcome.marks,
                "open": open_windows,
                "ledgers": ledgers,
                "window_opened_ns": opened_ns,
                "window_opened_at": self.state.window_opened_at or snapshot.taken_at,
            }
        )
        due = not same_boot or now_ns - opened_ns >= ns(self.interval_seconds)
        if due and self.spool.full:
            if not self._stats.spool_full:
                log.error(
                    "meter: spool %s full (%d bytes undelivered, cap %d): windows stay open "
                    "and keep counting until delivery makes room",
                    self.spool.directory,
                    self.spool.pending_bytes,
                    self.spool.max_bytes,
                )
            self._stats.spool_full = 1
            due = False
        if due:
            events, kept, ledgers = self._close(state, snapshot.node, now_ns)
            closed = state.model_copy(
                update={
                    "open": kept,
                    "ledgers": ledgers,
                    "window_opened_ns": now_ns,
                    "window_opened_at": snapshot.taken_at,
                }
            )
            self.state = self.spool.commit(events, closed)
            self._stats.windows_closed += 1
            if self._stats.spool_full and not self.spool.full:
                log.warning("meter: spool has room again; windows close as usual")
            self._stats.spool_full = int(self.spool.full)
            self._wake.set()
        else:
            self.state = self.spool.save(state)
        self._stats.pod_windows_lost += outcome.lost_pods
        self._stats.counter_resets += outcome.resets

    def _close(
        self, state: MeterState, node: str, now_ns: int
    ) -> tuple[list[Event], dict[str, OpenWindow], dict[str, Ledger]]:
        """The events of every open window whose pod's identity is known, the windows
        held open (metadata not there yet), and the ledgers after."""
        ledgers = dict(state.ledgers)
        kept: dict[str, OpenWindow] = {}
        events: list[Event] = []
        invalid: list[tuple[Event, str]] = []
        wait_ns = ns(self.billing.metadata_wait_seconds)
        for key, w in sorted(state.open.items()):
            ledger = ledgers.get(w.pod_uid) or Ledger()
            identity = ledger.identity
            if identity is None:
                young = now_ns - w.first_seen_ns < wait_ns
                if w.facts is None and self.metadata_expected and young:
                    kept[key] = w
                    continue
                identity = decide(self.billing, w.pod_uid, w.facts, w.namespace, w.name, node)
                if not identity.billed:
                    log.info("meter: pod %s not billed: %s", w.pod_uid, identity.reason)
            if not identity.billed:
                self._stats.pods_not_billed += ledger.identity is None
                ledgers[w.pod_uid] = Ledger.model_construct(identity=identity, carried_ns={})
                continue
            carried = dict(ledger.carried_ns)
            for event in build(w, identity, self.billing, carried):
                reason = problem(event)
                if reason is None:
                    events.append(event)
                else:
                    invalid.append((event, reason))
            if ledger.identity is not identity or carried != ledger.carried_ns:
                ledgers[w.pod_uid] = Ledger.model_construct(identity=identity, carried_ns=carried)
        for event, reason in invalid:
            self._stats.events_invalid += 1
            self.spool.park([event], f"invalid against the ingest schema: {reason}")
        if self.debug:
            for event in events:
                log.info("meter: event %s", orjson.dumps(event).decode())
        return events, kept, ledgers

    # -- delivering

    async def deliver_once(self) -> bool:
        """Send what the spool holds, oldest first; False if the receiver was not reachable."""
        outcome = await self.deliverer.round()
        self._stats.events_delivered += outcome.delivered
        if outcome.error is not None:
            self._stats.delivery_failures += 1
            self.last_error = outcome.error
            return False
        self.last_error = None
        return outcome.waiting == 0

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
            if self.batch_period_seconds and self.spool.pending_count < self.batch_size:
                await asyncio.sleep(self.batch_period_seconds)

    def start(self) -> None:
        log.info("%s", self.describe())
        self._loop.start()

    async def stop(self) -> None:
        """Stop delivering; what is unsent stays in the spool for the next start."""
        await self._loop.stop()
        await self.sender.aclose()
        self.spool.close()


def _selector_text(billing: Billing) -> str:
    return ",".join(
        f"{r.key} {r.op} {','.join(r.values)}".strip() for r in billing.selector.requirements
    )


def _prune(
    ledgers: dict[str, Ledger], marked: Collection[str], open_windows: dict[str, OpenWindow]
) -> dict[str, Ledger]:
    """Ledgers of pods the meter still knows (a mark or an open window)."""
    keep = set(marked) | {w.pod_uid for w in open_windows.values()}
    return {uid: ledger for uid, ledger in ledgers.items() if uid in keep}
