"""The exporter's ``/v1/containers`` for 250 containers, against a do-nothing server.

The real ``runtime-insights exporter`` command runs as a subprocess with the pod
reflector on (the in-repo fake API server lists 250 pods) and a unix-socket extractor
serving a 250-container snapshot. The baseline is the least any server can do: an
aiohttp handler returning a prebuilt body of the same bytes. Both are driven by the same
aiohttp client loop (bounded concurrency, bounded request count, loopback only), and
the report is the exporter's throughput and p99 latency as ratios of the baseline's
(medians over the same rounds, then their ratio),
plus the exporter process's resident memory, and the memory of a process that only
imports the exporter command (with the count of generated ``kubernetes.client`` API and
model modules the import pulled in: each one is memory the exporter never uses). Goals:
≥ 0.5× the baseline's requests per second, RSS < 80 MiB.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from bench.harness import StaticPodApi, running_pod
from bench.rounds import rounds
from exporter.http.documents import container_document
from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.kube.pods import pod_meta
from exporter.node.state import State
from exporter.node.views import Views
from extractor.contract import Container, Cpu, Fingerprint, Memory, Pod, Snapshot, Usage

PODS = 250
REQUESTS = 1500
CONCURRENCY = 8
ROUNDS = 3
RSS_GOAL_MIB = 80
ROOT = Path(__file__).resolve().parents[1]

BASELINE = """
import sys
from aiohttp import web
app = web.Application()
for route in sys.argv[2:]:
    path, _, name = route.partition("=")
    body = open(name, "rb").read()
    async def handler(request, body=body):
        return web.Response(body=body, content_type="application/json")
    app.router.add_get(path, handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
"""The least any HTTP server can do: ``BASELINE PORT /path=FILE …`` answers each path
with the file's bytes, read once."""


IMPORTS_ONLY = """
import sys
import runtime_insights.cli, exporter.wiring
generated = [m for m in sys.modules
             if m.startswith(("kubernetes.client.api.", "kubernetes.client.models."))]
rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]
print(rss, len(generated))
"""


def _cid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _usage(cgroup: str, n: int) -> Usage:
    return Usage(
        cgroup=cgroup,
        cpu=Cpu(usage_ns=n * 7_919_000, user_ns=n * 5_000_000, system_ns=n * 2_919_000),
        memory=Memory(current_bytes=n << 20, peak_bytes=(n + 1) << 20, working_set_bytes=n << 19),
        pids=3,
    )


def node(taken_at: float) -> tuple[Snapshot, list[dict[str, object]]]:
    """250 pods with one app container each (plus sandboxes), and their API objects."""
    fp = Fingerprint(os="rhel", osVersion="9.4", kind="Java", kindVersion="21.0.4")
    pods: list[Pod] = []
    containers: list[Container] = []
    api: list[dict[str, object]] = []
    for i in range(PODS):
        uid = str(uuid.UUID(_cid(f"pod-{i}")[:32]))
        ns, name = f"team-{i % 10}", f"svc-{i}-7d4b9c8f6-x{i:03d}"
        app_id, sandbox_id = _cid(f"app-{i}"), _cid(f"sandbox-{i}")
        cg = f"/kubepods/burstable/pod{uid}"
        for cid, sandbox in ((sandbox_id, True), (app_id, False)):
            containers.append(
                Container(
                    id=cid,
                    runtime="containerd",
                    name=None if sandbox else "app",
                    namespace=ns,
                    pod_name=name,
                    pod_uid=uid,
                    qos="burstable",
                    sandbox=sandbox,
                    image=None if sandbox else "registry.example/app:1.2.3",
                    pids=[10_000 + i],
                    started_at=taken_at - 3600,
                    runtime_seconds=3600.0,
                    usage=_usage(f"{cg}/{cid}", i + 1),
                    fingerprint=None if sandbox else fp,
                )
            )
        pods.append(Pod(uid=uid, namespace=ns, name=name, qos="burstable", usage=_usage(cg, i)))
        api.append(
            running_pod(
                name,
                ns,
                uid,
                app_id,
                labels={"app": f"svc-{i}", "team": f"team-{i % 10}", "tier": "backend"},
                annotations={"example.com/owner": f"team-{i % 10}@example.com"},
                replica_set=f"svc-{i}-7d4b9c8f6",
            )
        )
    snap = Snapshot(
        node="node-a", taken_at=taken_at, cgroup_version="v1", pods=pods, containers=containers
    )
    return snap, api


async def extractor_standin(path: str, snap: Snapshot) -> web.AppRunner:
    """A unix-socket extractor serving ``snap``."""
    body = snap.model_dump_json().encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/snapshot", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    return runner


async def _wait_port(log: Path, proc: subprocess.Popen[bytes]) -> int:
    for _ in range(300):
        m = re.search(r"listening on http://[^:]+:(\d+)", log.read_text(errors="replace"))
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"exporter exited: {log.read_text(errors='replace')}")
        await asyncio.sleep(0.1)
    raise RuntimeError("exporter did not start listening")


async def start_exporter(
    log: Path, sock: str, kubeconfig: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    """``runtime-insights exporter`` on a free port; kube on when a kubeconfig is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
    env.update(
        RUNTIME_INSIGHTS_HOST="127.0.0.1",
        RUNTIME_INSIGHTS_PORT="0",
        RUNTIME_INSIGHTS_EXTRACTOR_SOCKET=sock,
        RUNTIME_INSIGHTS_NODE_NAME="node-a",
        RUNTIME_INSIGHTS_KUBE_ENABLED="true" if kubeconfig else "false",
        PYTHONPATH=str(ROOT),
    )
    if kubeconfig:
        env["RUNTIME_INSIGHTS_KUBECONFIG"] = kubeconfig
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime_insights", "exporter"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        return proc, await _wait_port(log, proc)
    except RuntimeError:
        proc.terminate()
        proc.wait(10)
        raise


async def wait_ready(session: aiohttp.ClientSession, port: int) -> None:
    """Until the exporter on ``port`` is ready with names from the API server."""
    for _ in range(300):
        async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
            ready = await r.json()
        if ready.get("ready") and ready.get("metadataSource") == "api":
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the exporter never got ready: {ready}")


async def start_baseline(
    session: aiohttp.ClientSession, routes: dict[str, Path]
) -> tuple[subprocess.Popen[bytes], int]:
    """The ``BASELINE`` server answering each path of ``routes`` with its file, on a free
    port, once it answers."""
    port = free_port()
    args = [f"{path}={body}" for path, body in routes.items()]
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(port), *args])
    path = next(iter(routes))
    for _ in range(100):
        try:
            async with session.get(f"http://127.0.0.1:{port}{path}") as r:
                await r.read()
            return proc, port
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)
    proc.terminate()
    proc.wait(10)
    raise RuntimeError(f"the baseline server never answered {path}")


async def _load(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of REQUESTS GETs, CONCURRENCY at a time."""
    latencies: list[float] = []
    todo = iter(range(REQUESTS))

    async def worker() -> None:
        for _ in todo:
            t = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                assert resp.status == 200
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    return REQUESTS / elapsed, p99


def imports_only() -> tuple[float, int]:
    """RSS (MiB) of a process that has imported the exporter command and done nothing
    else, and how many generated kubernetes API/model modules that import pulled in."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS_ONLY],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]) / 1024, int(out[1])


def _rss_mib(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def run() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ri-bench-exporter-"))
    try:
        return await _run_in(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _run_in(tmp: Path) -> int:
    sock = str(tmp / "extractor.sock")
    snap, api_pods = node(time.time())
    procs: list[subprocess.Popen[bytes]] = []
    async with StaticPodApi(api_pods) as api:
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        extractor = await extractor_standin(sock, snap)
        try:
            exporter, port = await start_exporter(tmp / "exporter.log", sock, str(kubeconfig))
            procs.append(exporter)
            local, local_port = await start_exporter(tmp / "local.log", sock, None)
            procs.append(local)
            url = f"http://127.0.0.1:{port}/v1/containers"
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY)
            ) as session:
                await wait_ready(session, port)
                async with session.get(url) as r:
                    body = await r.read()
                count = body.count(b'"containerId"')
                assert count == PODS, f"expected {PODS} containers, got {count}"
                assert b'"metadataSource":"api"' in body
                (tmp / "body.json").write_bytes(body)
                baseline, base_port = await start_baseline(
                    session, {"/v1/containers": tmp / "body.json"}
                )
                procs.append(baseline)
                base_url = f"http://127.0.0.1:{base_port}/v1/containers"
                await _load(session, url)  # warm-up both
                await _load(session, base_url)
                ours, theirs = [], []
                for _ in range(rounds(ROUNDS)):
                    theirs.append(await _load(session, base_url))
                    ours.append(await _load(session, url))
                rss, hwm = _rss_mib(exporter.pid)
                async with session.get(f"http://127.0.0.1:{local_port}/v1/containers") as r:
                    assert r.status == 200
                local_rss, _ = _rss_mib(local.pid)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            await extractor.cleanup()
    build, dump = cold_build(snap, api_pods)
    import_rss, generated = imports_only()
    rps, p99 = statistics.median(r for r, _ in ours), statistics.median(p for _, p in ours)
    base_rps = statistics.median(r for r, _ in theirs)
    base_p99 = statistics.median(p for _, p in theirs)
    ratio = rps / base_rps  # a ratio of medians: each server over the same rounds
    print(f"body: {len(body)} bytes, {PODS} containers, metadata from the fake API server")
    print(f"baseline (prebuilt body): {base_rps:8.0f} req/s  p99 {base_p99:6.1f} ms")
    print(f"exporter /v1/containers:  {rps:8.0f} req/s  p99 {p99:6.1f} ms")
    n = rounds(ROUNDS)
    print(f"throughput ratio (medians of {n} rounds): {ratio:.2f}x of baseline (goal >= 0.5)")
    print(f"p99 ratio: {p99 / base_p99:.2f}x of baseline")
    print(
        f"cold view (join + serialise 250 containers after a new snapshot): {build * 1e3:.1f} ms"
        f" = {build / dump:.1f}x serialising the finished documents ({dump * 1e3:.2f} ms)"
    )
    print(f"exporter RSS: {rss:.1f} MiB (peak {hwm:.1f} MiB; goal < {RSS_GOAL_MIB})")
    print(f"exporter RSS without the pod reflector (kube disabled): {local_rss:.1f} MiB")
    print(
        f"exporter modules imported, nothing running: {import_rss:.1f} MiB"
        f" ({generated} generated kubernetes API/model modules loaded)"
    )
    return 0 if ratio >= 0.5 and hwm < RSS_GOAL_MIB else 1


class _Pods:
    """The reflector's lookups over converted Pod objects (the in-process cold build)."""

    state = "synced"
    last_error = None
    dropped_events = 0
    conversion_errors = 0
    generation = 0

    def __init__(self, pods: list[dict[str, object]]) -> None:
        metas = [pod_meta(p) for p in pods]
        self._uids = {m.uid: m for m in metas}
        self._ids = {st.container_id: (m, st) for m in metas for st in m.containers}

    def get_by_uid(self, uid: str) -> PodMeta | None:
        return self._uids.get(uid)

    def get_by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerStatus] | None:
        return self._ids.get(container_id)


def cold_build(snap: Snapshot, api_pods: list[dict[str, object]]) -> tuple[float, float]:
    """Median seconds to join + serialise the 250-container view after a new snapshot,
    and to serialise the finished documents alone (the least a JSON API can do)."""
    state = State()
    views = Views(state, _Pods(api_pods))
    joined, dumped = [], []
    for _ in range(15):
        state.record(snap)
        t = time.perf_counter()
        view = views.current()
        assert view is not None
        devices = view.snapshot.block_devices
        docs = [container_document(cv, devices) for cv in view.containers]
        orjson.dumps(docs)
        joined.append(time.perf_counter() - t)
        t = time.perf_counter()
        orjson.dumps(docs)
        dumped.append(time.perf_counter() - t)
    return statistics.median(joined), statistics.median(dumped)


def free_port() -> int:
    """A loopback port nobody holds right now, for the baseline process to bind."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
