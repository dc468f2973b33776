"""``/healthz`` latency while ``/metrics`` is hammered, 250 containers, against a static
aiohttp server in the same run.

The real ``runtime-insights exporter`` runs as a subprocess as in bench/bench_exporter.py
(its pod reflector listing 250 pods from a static API, its poll loop reading a
250-container snapshot from a unix-socket extractor stand-in). The baseline is
bench/bench_exporter.py's ``BASELINE`` aiohttp server holding the exporter's own
``/metrics`` answer as a prebuilt body and a constant ``/healthz``: what any server
costs. Each round hammers one server's ``/metrics`` (``CONCURRENCY`` requests in flight,
one process) while a second process probes its ``/healthz`` every ``PROBE_INTERVAL``
seconds over one keep-alive connection, for ``SECONDS``; rounds alternate baseline and
exporter. Reported: the probe's p50/p99
and worst latency and the hammer's ``/metrics`` rate, medians over rounds, with the load
average. Goal: exporter ``/healthz`` p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.bench_exporter import extractor_standin, node, start_baseline, start_exporter, wait_ready
from bench.harness import StaticPodApi

ROUNDS = 3
SECONDS = 6.0
CONCURRENCY = 8
PROBE_INTERVAL = 0.01
P99_GOAL_MS = 50.0

PROBE = """
import http.client, json, sys, time
host, port = sys.argv[1], int(sys.argv[2])
seconds, interval = float(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection(host, port, timeout=30)
latencies = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    t = time.perf_counter()
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    latencies.append(time.perf_counter() - t)
    time.sleep(interval)
print(json.dumps(latencies))
"""


@dataclass
class Round:
    p50_ms: float
    p99_ms: float
    worst_ms: float
    metrics_rps: float


async def _hammer(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> int:
    done = 0

    async def worker() -> None:
        nonlocal done
        while not stop.is_set():
            async with session.get(url) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            done += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


async def _round(session: aiohttp.ClientSession, port: int) -> Round:
    """Hammer ``/metrics`` while the probe process measures ``/healthz``."""
    stop = asyncio.Event()
    hammer = asyncio.create_task(_hammer(session, f"http://127.0.0.1:{port}/metrics", stop))
    await asyncio.sleep(0.5)  # the hammer is at full speed before the probe starts
    started = time.perf_counter()
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        "127.0.0.1",
        str(port),
        str(SECONDS),
        str(PROBE_INTERVAL),
        stdout=subprocess.PIPE,
    )
    out, _ = await probe.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    count = await hammer
    latencies = sorted(json.loads(out))
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    return Round(
        statistics.median(latencies) * 1e3, p99 * 1e3, latencies[-1] * 1e3, count / elapsed
    )


async def run() -> int:
    with tempfile.TemporaryDirectory(prefix="ri-bench-health-") as workdir:
        return await _measure(Path(workdir))


async def _measure(tmp: Path) -> int:
    snap, api_pods = node(time.time())
    sock = str(tmp / "extractor.sock")
    ours: list[Round] = []
    theirs: list[Round] = []
    procs: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()
    async with StaticPodApi(api_pods) as api:
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        extractor = await extractor_standin(sock, snap)
        try:
            exporter, port = await start_exporter(tmp / "exporter.log", sock, str(kubeconfig))
            procs.append(exporter)
            connector = aiohttp.TCPConnector(limit=CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector) as session:
                await wait_ready(session, port)
                async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                    body = await r.read()
                assert body.count(b"runtime_insights_container_cpu_seconds_total{") == 250
                (tmp / "metrics.txt").write_bytes(body)
                (tmp / "healthz.json").write_bytes(b'{"status":"ok"}')
                routes = {"/healthz": tmp / "healthz.json", "/metrics": tmp / "metrics.txt"}
                baseline, base_port = await start_baseline(session, routes)
                procs.append(baseline)
                for _ in range(ROUNDS):
                    theirs.append(await _round(session, base_port))
                    ours.append(await _round(session, port))
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            await extractor.cleanup()
    load_after = os.getloadavg()

    def median(rounds: list[Round], field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rounds))

    print(f"/metrics body: {len(body)} bytes, 250 containers; {ROUNDS} rounds of {SECONDS:g} s")
    print(
        f"load average before/after: {load_before[0]:.2f}/{load_after[0]:.2f} "
        f"(1 min), {os.cpu_count()} CPUs"
    )
    for name, rounds in (("baseline (static)", theirs), ("exporter", ours)):
        print(
            f"{name:18} /healthz p50 {median(rounds, 'p50_ms'):7.2f} ms  "
            f"p99 {median(rounds, 'p99_ms'):7.2f} ms  worst {median(rounds, 'worst_ms'):7.1f} ms"
            f"   /metrics {median(rounds, 'metrics_rps'):7.0f} req/s"
        )
    p99 = median(ours, "p99_ms")
    ratio = median(ours, "metrics_rps") / median(theirs, "metrics_rps")
    print(f"exporter /healthz p99 {p99:.1f} ms (goal < {P99_GOAL_MS:g} ms)")
    print(f"exporter /metrics throughput under the probe: {ratio:.2f}x of the static server")
    return 0 if p99 < P99_GOAL_MS else 1


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
