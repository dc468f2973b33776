"""Usage events per second through the whole meter, against posting prebuilt batches.

10,000 pods in synthetic snapshots (the meter's input, no kernel needed). The pipeline
round times what happens when a window closes on a node metering for a while (the
pods' identities decided at the window before): building 10,000 CloudEvents, checking
each against the ingest schema, committing them with the marks to the spool (fsync, one
rename), then delivering the spool in batches of 100 to an ingest server in a process of
its own (bench/harness.py: it parses every batch and keeps the ids), four batches in
flight. The baseline posts the same events, serialized beforehand, in the same batches
to the same server with the same HTTP client and as many in flight: the least any sender
can do. The same close is timed once more with the closing poll's readings of the
10,000 pods included. Rounds alternate, medians are reported. Goals: at least 20,000
events/s, and at least
half the baseline's rate.

Then OpenMeter goes away: 10,000 pods are metered poll after poll with every delivery
failing, until the spool is full and windows stay open; the process's resident memory
is sampled after every poll. Goal: bounded (no growth once the spool is full).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.harness import IngestServer
from exporter.meter.client import CONTENT_TYPE, OpenMeterClient
from exporter.meter.events import Event
from exporter.meter.pipeline import Meter
from exporter.meter.spool import Spool
from extractor.contract import Container, Cpu, Memory, Pod, Snapshot, Usage

PODS = 10_000
ROUNDS = 3
BATCH = 100
IN_FLIGHT = 4
OUTAGE_POLLS = 36
GOAL_EVENTS_PER_SECOND = 20_000


def snapshot(step: int, pods: int = PODS) -> Snapshot:
    """Poll ``step`` (10 s apart) of a node running ``pods`` one-container pods."""
    s = Snapshot(
        node="bench-node",
        taken_at=1.8e9 + 10 * step,
        taken_boottime=1_000.0 + 10 * step,
        boot_id="bench",
        cgroup_version="v2",
    )
    for i in range(pods):
        uid = f"00000000-0000-4000-8000-{i:012d}"
        cid = f"{i:064x}"
        cpu = Cpu(usage_ns=10**9 + step * 1_000_003 + i, user_ns=step * 600, system_ns=step * 400)
        memory = Memory(working_set_bytes=(1 << 20) + step, current_bytes=1 << 21)
        s.pods.append(
            Pod(
                uid=uid,
                namespace="bench",
                name=f"pod-{i}",
                container_ids=[cid],
                usage=Usage(cgroup=f"/kubepods/pod{uid}", cpu=cpu, memory=memory),
            )
        )
        s.containers.append(
            Container(
                id=cid,
                runtime="containerd",
                name="app",
                namespace="bench",
                pod_name=f"pod-{i}",
                pod_uid=uid,
                started_at=1.8e9 - 100,
                started_boottime=900.0,
                usage=Usage(cgroup="/c", cpu=Cpu(usage_ns=10**8 + step * 900_001 + i)),
            )
        )
    return s


def no_meta(uid: str) -> None:
    return None


SNAPSHOTS = [] if "--outage" in sys.argv else [snapshot(step) for step in range(5)]


async def primed(directory: Path, sender: OpenMeterClient) -> tuple[Meter, float]:
    """A meter one poll short of closing its second window (the first one closed and
    delivered: every pod's identity is decided, as on a node metering for a while), and
    the mean time of a poll that closes nothing."""
    m = Meter(
        Spool(directory, 1 << 30),
        sender,
        interval_seconds=20.0,
        batch_size=BATCH,
        in_flight=IN_FLIGHT,
    )
    times = []
    for s in SNAPSHOTS[:4]:
        began = time.perf_counter()
        m.observe(s, no_meta)
        times.append(time.perf_counter() - began)
        if s is SNAPSHOTS[2]:  # the first window closed
            assert await m.deliver_once()
    return m, statistics.mean([times[1], times[3]])


async def pipeline_round(url: str, closing: Snapshot) -> tuple[float, float, list[Event]]:
    """(seconds from the closing poll to the last event delivered, seconds of a poll
    that closes nothing, the events)."""
    with tempfile.TemporaryDirectory(prefix="ri-bench-meter-") as directory:
        client = OpenMeterClient(url, token=lambda: None, max_attempts=3)
        m, poll = await primed(Path(directory), client)
        delivered_before = m.stats().events_delivered
        httpx.post(url + "/reset")
        began = time.perf_counter()
        m.observe(closing, no_meta)  # closes the second window
        events = [e for item in m.spool.pending() for e in item.events]
        delivered = await m.deliver_once()
        elapsed = time.perf_counter() - began
        assert delivered and m.stats().events_delivered - delivered_before == PODS, m.last_error
        await m.stop()
    return elapsed, poll, events


async def baseline_round(url: str, bodies: list[bytes]) -> float:
    """The same batches, prebuilt, posted with the same client and as many in flight."""
    async with httpx.AsyncClient(timeout=30) as http:
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def post(body: bytes) -> None:
            async with slots:
                response = await http.post(
                    url + "/api/v1/events", content=body, headers={"Content-Type": CONTENT_TYPE}
                )
                assert response.status_code == 204

        began = time.perf_counter()
        await asyncio.gather(*(post(b) for b in bodies))
        return time.perf_counter() - began


def received(url: str) -> int:
    return int(httpx.get(url + "/count").json()["events"])


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def outage() -> dict[str, float]:
    """OpenMeter away: every poll closes a window until the spool is full."""
    logging.disable(logging.WARNING)  # one "postponed" line per poll otherwise
    with tempfile.TemporaryDirectory(prefix="ri-bench-meter-") as directory:
        client = OpenMeterClient("http://127.0.0.1:9", token=lambda: None, max_attempts=1)
        m = Meter(Spool(directory, 64 << 20), client, interval_seconds=10.0, batch_size=BATCH)
        samples: list[float] = []
        full_at = None
        for step in range(OUTAGE_POLLS):
            taken = snapshot(step)
            m.observe(taken, no_meta)
            del taken
            await m.deliver_once()
            gc.collect()
            samples.append(rss_mib())
            if full_at is None and m.spool.full:
                full_at = step
        stats = m.stats()
        after_full = samples[full_at:] if full_at is not None else samples[-4:]
        third = max(len(after_full) // 3, 1)
        out = {
            "first": samples[0],
            "peak": max(samples),
            "last": samples[-1],
            "low_after_full": min(after_full),
            "high_after_full": max(after_full),
            "trend_after_full": statistics.mean(after_full[-third:])
            - statistics.mean(after_full[:third]),
            "full_at": float(full_at if full_at is not None else -1),
            "pending": float(stats.pending),
            "dropped": float(stats.events_dropped),
            "spool_mib": m.spool.pending_bytes / (1 << 20),
            "open": float(len(m.state.open)),
        }
        await m.stop()
    return out


async def measure() -> dict[str, object]:
    server = IngestServer().start()
    try:
        pipeline: list[float] = []
        with_poll: list[float] = []
        baseline: list[float] = []
        polls: list[float] = []
        bodies: list[bytes] = []
        # the window closes at a poll that reads no pod (each is kept by its mark): what
        # is timed is building, checking, spooling and sending the 10,000 events alone
        quiet = Snapshot(
            node="bench-node",
            taken_at=SNAPSHOTS[4].taken_at,
            taken_boottime=SNAPSHOTS[4].taken_boottime,
            boot_id="bench",
            cgroup_version="v2",
        )
        for _ in range(ROUNDS):
            httpx.post(server.url + "/reset")
            elapsed, poll, events = await pipeline_round(server.url, quiet)
            assert received(server.url) == PODS
            pipeline.append(elapsed)
            polls.append(poll)
            httpx.post(server.url + "/reset")
            elapsed, _, _ = await pipeline_round(server.url, SNAPSHOTS[4])
            with_poll.append(elapsed)
            if not bodies:
                bodies = [orjson.dumps(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
            httpx.post(server.url + "/reset")
            baseline.append(await baseline_round(server.url, bodies))
            assert received(server.url) == PODS
    finally:
        server.stop()
    return {
        "pipeline": statistics.median(pipeline),
        "with_poll": statistics.median(with_poll),
        "baseline": statistics.median(baseline),
        "poll": statistics.median(polls),
        "bytes": sum(len(b) for b in bodies),
        "outage": outage_in_a_fresh_process(),
    }


def outage_in_a_fresh_process() -> dict[str, float]:
    """The outage in a process of its own, so its memory is the meter's, not this
    bench's prebuilt snapshots."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_meter_throughput", "--outage"],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result: dict[str, float] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def main() -> int:
    if "--outage" in sys.argv:
        print(orjson.dumps(asyncio.run(outage())).decode())
        return 0
    r = asyncio.run(measure())
    pipeline, baseline = float(r["pipeline"]), float(r["baseline"])  # type: ignore[arg-type]
    ours, theirs = PODS / pipeline, PODS / baseline
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"load average {' '.join(load)}; {PODS} pods, batches of {BATCH}, median of {ROUNDS}")
    print(
        f"baseline, prebuilt batches posted: {theirs:,.0f} events/s "
        f"({int(r['bytes']) / PODS:.0f} bytes per event)"  # type: ignore[call-overload]
    )
    print(
        f"pipeline, build + schema check + spool + send: {ours:,.0f} events/s, "
        f"{ours / theirs:.2f}x the baseline"
    )
    whole = PODS / float(r["with_poll"])  # type: ignore[arg-type]
    print(f"the same with the closing poll's readings of {PODS} pods: {whole:,.0f} events/s")
    print(f"a poll that closes nothing: {float(r['poll']) * 1e6 / PODS:.0f} µs per pod")  # type: ignore[arg-type]
    o = r["outage"]
    assert isinstance(o, dict)
    print(
        f"OpenMeter down, {OUTAGE_POLLS} polls of {PODS} pods: spool full after poll "
        f"{o['full_at']:.0f} ({o['spool_mib']:.1f} MiB, {o['pending']:.0f} events kept, "
        f"{o['dropped']:.0f} dropped, {o['open']:.0f} windows open); RSS {o['first']:.0f} MiB "
        f"after the first poll, {o['low_after_full']:.0f}-{o['high_after_full']:.0f} MiB once "
        f"full (mean of the last third {o['trend_after_full']:+.1f} MiB from the first third)"
    )
    ok = ours >= GOAL_EVENTS_PER_SECOND and ours >= theirs / 2
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
