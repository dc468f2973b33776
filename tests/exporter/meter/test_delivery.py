"""The OpenMeter pipeline end to end against a validating fake ingest server.

Exactly-once is shown by totals: whatever crashes, retries and replays happen, the CPU
OpenMeter ends up with (after its (source, id) dedupe) equals the counters' change.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter import wiring
from exporter.kube.podmeta import PodMeta
from exporter.meter import spool as spool_module
from exporter.meter.billing import Billing
from exporter.meter.client import OpenMeterClient, Refused
from exporter.meter.metrics import MeterCollector
from exporter.meter.pipeline import Meter, token_source
from exporter.meter.spool import Spool
from exporter.wiring import StartupError, load_settings
from extractor.contract import Snapshot
from tests.support.meter_snapshots import C, P, snap
from tests.support.openmeter import FakeOpenMeter

TOKEN = "om_test_token"
UIDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]


class Sleeps:
    """Records backoff delays instead of waiting them: no test depends on the clock."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(url: str, sleeps: Sleeps, max_attempts: int = 5) -> OpenMeterClient:
    return OpenMeterClient(
        url, token=lambda: TOKEN, max_attempts=max_attempts, sleep=sleeps, jitter=lambda: 1.0
    )


def meter(directory: Path, url: str, sleeps: Sleeps | None = None, **kw: Any) -> Meter:
    max_bytes = kw.pop("max_bytes", 1 << 20)
    sender = client(url, sleeps or Sleeps(), kw.pop("max_attempts", 5))
    return Meter(Spool(directory, max_bytes), sender, interval_seconds=60.0, **kw)


def node_pass(step: int) -> Snapshot:
    """Pass ``step`` (every 10 s) over three pods; pod 2's "job" container exits at step 4."""
    pods = []
    for i, uid in enumerate(UIDS):
        own = step * (i + 1) * 1_000_003
        containers = [C(f"app{i}", own, name="app")]
        pod_cpu = own + step * 7_919
        if i == 2:
            job = min(step, 4) * 50_000_017
            pod_cpu += job
            if step < 4:
                containers.append(C("job2", job, name="job"))
        pods.append(P(uid, 10**12 + pod_cpu, containers, name=f"web-{i}"))
    return snap(1_000.0 + 10 * step, *pods)


def pod_total(step: int) -> int:
    """Σ over pods of their counter at ``step`` (for expected totals)."""
    return sum(p.usage.cpu.usage_ns for p in node_pass(step).pods if p.usage and p.usage.cpu)


def no_meta(uid: str) -> PodMeta | None:
    return None


def feed(m: Meter, steps: range) -> None:
    for step in steps:
        m.observe(node_pass(step), no_meta)


@pytest.fixture
async def om() -> AsyncIterator[FakeOpenMeter]:
    async with FakeOpenMeter(token=TOKEN) as server:
        yield server


async def test_every_event_is_valid_and_the_bill_equals_the_counters(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url)
    feed(m, range(13))  # windows close at steps 6 and 12
    assert await m.deliver_once()
    assert om.rejected == 0 and om.duplicates == 0
    assert {ct for _, ct, _ in om.requests} == {"application/cloudevents-batch+json"}
    assert len(om.events) == 6
    assert om.billed_cpu_ns() == pod_total(12) - pod_total(0)
    job_pod = [e for e in om.events.values() if e["data"]["pod_uid"] == UIDS[2]]
    # "job" exited at step 4 unseen: it gets its own CPU plus the pod's remainder of that poll
    job = sum(e["data"]["containers"].get("job", 0) for e in job_pod)
    assert job == 4 * 50_000_017 + 7_919
    assert list(m.spool.pending()) == [] and m.stats().events_delivered == 6
    await m.stop()


async def test_a_deliberately_invalid_event_is_rejected_by_the_fake(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url)
    feed(m, range(7))
    (item,) = m.spool.pending()
    bad = dict(item.events[0], subject="")
    with pytest.raises(Refused, match="subject"):
        await m.sender.send([bad])
    assert om.rejected == 1 and om.events == {}
    await m.stop()


async def test_500_and_429_are_retried_with_backoff_then_delivered(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    sleeps = Sleeps()
    m = meter(tmp_path, om.url, sleeps)
    feed(m, range(7))
    om.fail(2, status=500)
    om.fail(1, status=429, retry_after=7)
    assert await m.deliver_once()
    # full jitter at its top (jitter=1): base 0.5 s doubling, then Retry-After
    assert sleeps.delays == [0.5, 1.0, 7.0]
    assert [s for s, _, _ in om.requests] == [500, 500, 429, 204]
    assert om.billed_cpu_ns() == pod_total(6) - pod_total(0)
    await m.stop()


async def test_giving_up_keeps_the_events_for_the_next_round(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url, max_attempts=3)
    feed(m, range(7))
    om.fail(3, status=503)
    assert not await m.deliver_once()
    assert m.stats().delivery_failures == 1 and m.stats().pending == 3
    assert m.last_error is not None and "503" in m.last_error
    assert await m.deliver_once()
    assert len(om.events) == 3 and m.stats().pending == 0
    await m.stop()


class Clock:
    """A boot clock the test moves by hand (for the refusal pauses)."""

    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def _replace_window(m: Meter, events: list[dict[str, Any]]) -> None:
    for item in list(m.spool.pending()):
        m.spool.settle(item, {e["id"] for e in item.events})
    m.spool.commit(events, m.state)


async def test_a_refused_event_is_retried_later_then_parked_and_the_rest_delivered(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    """A 400 for one event: the batch is halved to find it, the rest delivered; the event
    stays in the spool and is tried again after a pause (a proxy's 400 may pass), and is
    parked only after it has been refused for ``park_after_seconds``."""
    m = meter(tmp_path, om.url, park_after_seconds=600.0)
    clock = Clock()
    m.deliverer.clock = clock
    feed(m, range(7))
    (item,) = m.spool.pending()
    good = item.events
    bad = dict(good[1], id="bad-event", time="yesterday")
    _replace_window(m, [good[0], bad, good[2]])
    assert not await m.deliver_once()  # delivered the good ones; one waits
    assert {i for _, i in om.events} == {good[0]["id"], good[2]["id"]}
    assert [s for s, _, _ in om.requests] == [400, 204, 400, 400, 204]
    assert m.stats().pending == 1 and m.stats().events_parked == 0
    requests = len(om.requests)
    assert not await m.deliver_once()  # within its pause: not even tried
    assert len(om.requests) == requests
    for _ in range(4):
        clock.advance(300)
        await m.deliver_once()
    (poison,) = (tmp_path / "poison").iterdir()
    parked = orjson.loads(poison.read_bytes())
    assert [e["id"] for e in parked["events"]] == ["bad-event"] and "time" in parked["reason"]
    assert list(m.spool.pending()) == [] and m.stats().events_parked == 1
    problems = " ".join(text for _, text in m.problems())
    assert "1 usage event(s) parked" in problems and str(tmp_path / "poison") in problems
    await m.stop()


async def test_a_proxys_413_and_412_are_retried_before_anything_is_parked(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    """Finding 6: a proxy in front of OpenMeter answering 413 (body too big for now) or
    412 is not OpenMeter refusing the events: halve, back off, try again; nothing is
    parked while it may still pass."""
    sleeps = Sleeps()
    m = meter(tmp_path, om.url, sleeps)
    clock = Clock()
    m.deliverer.clock = clock
    feed(m, range(7))
    om.fail(2, status=412)
    om.fail(1, status=413)
    assert await m.deliver_once()
    assert [s for s, _, _ in om.requests] == [412, 412, 413, 204, 204]
    assert len(om.events) == 3 and m.stats().events_parked == 0
    om.fail(5, status=413)  # every part refused for a while: kept, never parked
    feed(m, range(7, 13))
    assert not await m.deliver_once()
    assert m.stats().events_parked == 0 and m.stats().pending >= 1
    clock.advance(120)
    assert await m.deliver_once()
    assert len(om.events) == 6 and m.stats().events_parked == 0
    await m.stop()


async def test_an_invalid_event_is_parked_with_the_reason_and_never_sent(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url, billing=Billing(source="bad source"))
    feed(m, range(7))
    assert await m.deliver_once()
    assert om.requests == [] and m.stats().events_invalid == 3
    (poison, *_) = sorted((tmp_path / "poison").iterdir())
    assert "ingest schema" in orjson.loads(poison.read_bytes())["reason"]
    assert ("meter-parked", True) in [(c, "parked in" in t) for c, t in m.problems()]
    await m.stop()


async def test_a_crash_after_the_spool_write_resends_after_restart(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    first = meter(tmp_path, om.url)
    feed(first, range(9))  # a window closed at step 6, never sent; steps 7, 8 open
    first.spool.close()  # the process dies: no stop(), nothing delivered
    second = meter(tmp_path, om.url)
    assert second.state == first.state and second.stats().pending == 3
    feed(second, range(9, 13))
    assert await second.deliver_once()
    assert om.duplicates == 0 and len(om.events) == 6
    assert om.billed_cpu_ns() == pod_total(12) - pod_total(0)
    await second.stop()


async def test_a_replay_after_a_crash_mid_delivery_is_deduplicated(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    first = meter(tmp_path, om.url)
    feed(first, range(7))
    (item,) = first.spool.pending()
    await first.sender.send(item.events)  # delivered, then the process dies before settling
    await first.sender.aclose()
    first.spool.close()
    second = meter(tmp_path, om.url)
    assert await second.deliver_once()
    assert om.duplicates == 3 and len(om.events) == 3
    assert om.billed_cpu_ns() == pod_total(6) - pod_total(0)
    await second.stop()


async def test_a_failed_spool_write_is_recomputed_without_double_count(
    om: FakeOpenMeter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = meter(tmp_path, om.url)
    feed(m, range(6))
    real = spool_module._write
    calls = {"n": 0}

    def failing_once(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(spool_module, "_write", failing_once)
    before = m.state
    m.observe(node_pass(6), no_meta)  # the window's commit fails: nothing moves
    assert m.state == before and m.stats().spool_errors == 1
    assert m.last_error is not None and "No space" in m.last_error
    feed(m, range(7, 14))  # windows close at steps 7 (spanning the failure) and 13
    assert await m.deliver_once()
    assert om.billed_cpu_ns() == pod_total(13) - pod_total(0)
    await m.stop()


async def test_a_full_spool_keeps_counting_in_open_windows_and_drops_nothing(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    """Finding 6: OpenMeter away until the spool is full: windows stop closing (the open
    ones keep counting, with a clear signal) instead of dropping billed events; once
    delivery makes room, the bill is whole."""
    m = meter(tmp_path, om.url, max_bytes=6000)
    feed(m, range(61))
    s = m.stats()
    assert s.events_dropped == 0 and s.spool_full == 1
    assert any(c == "meter-spool-full" and "spool full" in t for c, t in m.problems())
    assert m.state.open  # still counting
    assert await m.deliver_once()
    assert not m.spool.full
    feed(m, range(61, 68))
    assert await m.deliver_once()
    # the held window closed at step 61, the next at 67
    assert om.duplicates == 0 and om.billed_cpu_ns() == pod_total(67) - pod_total(0)
    await m.stop()


async def test_an_unreachable_openmeter_postpones_delivery(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url, max_attempts=2)
    feed(m, range(7))
    await om.down()
    assert not await m.deliver_once()
    assert m.last_error is not None and "gave up after 2" in m.last_error
    assert om.url + "/api/v1/events" in m.last_error
    await om.up()
    assert await m.deliver_once()
    assert len(om.events) == 3
    await m.stop()


async def test_run_delivers_each_closed_window_and_stop_releases_the_spool(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = meter(tmp_path, om.url)
    m.start()
    feed(m, range(7))
    async with asyncio.timeout(30):
        while len(om.events) < 3:
            await asyncio.sleep(0.01)
    await m.stop()
    Spool(tmp_path, 1 << 20).close()


async def test_stale_snapshots_are_ignored(om: FakeOpenMeter, tmp_path: Path) -> None:
    m = meter(tmp_path, om.url)
    feed(m, range(3))
    state = m.state
    m.observe(node_pass(1), no_meta)
    assert m.state == state and m.stats().stale_snapshots == 1
    await m.stop()


async def test_metrics_expose_the_meter_counters(om: FakeOpenMeter, tmp_path: Path) -> None:
    m = meter(tmp_path, om.url)
    feed(m, range(7))
    await m.deliver_once()
    registry = CollectorRegistry()
    registry.register(MeterCollector(m))
    text = generate_latest(registry).decode()
    assert "runtime_insights_meter_events_delivered_total 3.0" in text
    assert "runtime_insights_meter_windows_closed_total 1.0" in text
    assert "runtime_insights_meter_events_pending 0.0" in text
    await m.stop()


def test_settings_errors_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_OPENMETER_URL", "openmeter.cloud")
    with pytest.raises(StartupError, match="RUNTIME_INSIGHTS_OPENMETER_URL"):
        load_settings(None)
    monkeypatch.setenv("RUNTIME_INSIGHTS_OPENMETER_URL", "https://openmeter.cloud")
    monkeypatch.setenv("RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS", "0")
    with pytest.raises(StartupError, match="RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS"):
        load_settings(None)
    monkeypatch.delenv("RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS")
    monkeypatch.setenv("RUNTIME_INSIGHTS_OPENMETER_TOKEN", "a")
    monkeypatch.setenv("RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE", "/run/secrets/token")
    with pytest.raises(StartupError, match="RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE"):
        load_settings(None)


async def test_seed_env_names_work_and_the_meter_is_off_without_a_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, om: FakeOpenMeter
) -> None:
    for key in list(os.environ):
        if key.startswith(("RUNTIME_INSIGHTS_", "OPENMETER_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    assert wiring.meter(load_settings(None)) is None
    monkeypatch.setenv("OPENMETER_URL", om.url)
    monkeypatch.setenv("OPENMETER_TOKEN", TOKEN)
    monkeypatch.setenv("RUNTIME_INSIGHTS_METER_SPOOL_DIR", str(tmp_path))
    m = wiring.meter(load_settings(None))
    assert m is not None
    feed(m, range(7))
    assert await m.deliver_once()  # the fake checks the bearer token
    assert len(om.events) == 3
    await m.stop()


async def test_a_timed_out_request_that_landed_is_deduplicated_on_retry(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    sender = OpenMeterClient(
        om.url, token=lambda: TOKEN, timeout_seconds=0.05, max_attempts=1, sleep=Sleeps()
    )
    m = Meter(spool, sender, interval_seconds=60.0)
    feed(m, range(7))
    om.delay = 0.5  # the server accepts the batch after the client stopped waiting
    assert not await m.deliver_once()
    assert m.last_error is not None and "Timeout" in m.last_error
    async with asyncio.timeout(30):
        while len(om.events) < 3:
            await asyncio.sleep(0.01)
    om.delay = 0.0
    assert await m.deliver_once()
    assert om.duplicates == 3 and om.billed_cpu_ns() == pod_total(6) - pod_total(0)
    await m.stop()


async def test_a_wrong_token_keeps_the_events_instead_of_parking_them(
    om: FakeOpenMeter, tmp_path: Path
) -> None:
    m = Meter(
        Spool(tmp_path, 1 << 20),
        OpenMeterClient(om.url, token=lambda: "wrong", sleep=Sleeps()),
        interval_seconds=60.0,
    )
    feed(m, range(7))
    assert not await m.deliver_once()
    assert [s for s, _, _ in om.requests] == [401]  # not retried within the round
    assert m.last_error is not None and "HTTP 401" in m.last_error
    assert m.stats().pending == 3 and m.stats().events_parked == 0
    await m.stop()


def test_the_token_file_is_reread_and_may_be_absent(tmp_path: Path) -> None:
    """The manifests mount an optional Secret: no file means no token (self-hosted
    OpenMeter takes none); a rotated file is picked up at the next request."""
    token_file = tmp_path / "token"
    token = token_source(None, str(token_file))
    assert token() is None
    token_file.write_text("om_first\n")
    assert token() == "om_first"
    token_file.write_text("om_rotated")
    assert token() == "om_rotated"
    token_file.unlink()
    token_file.mkdir()  # unreadable as a file: an error, not silently no token
    with pytest.raises(OSError):
        token()
