"""Snapshots, a pod-lookup double and an in-process client for the exporter's unit tests.

The reflector double implements only the lookup interface the exporter reads (state,
last_error, get_by_uid, get_by_container_id); the reflector itself is tested against the
fake API server elsewhere, and end to end in tests/integration/test_exporter_e2e.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.http.app import build_app
from exporter.kube.podmeta import ContainerStatus, Owner, PodMeta
from exporter.node.state import State
from exporter.settings import Settings
from extractor.contract import (
    BlockDevice,
    Container,
    Cpu,
    Fingerprint,
    Interface,
    Memory,
    Pod,
    Pressure,
    Runtime,
    RuntimeComponent,
    Snapshot,
    Usage,
)


def cid(seed: str) -> str:
    """A 64-hex container ID, like the runtimes use."""
    return hashlib.sha256(seed.encode()).hexdigest()


def usage(cgroup: str, cpu_ns: int, mem: int) -> Usage:
    return Usage(
        cgroup=cgroup,
        cpu=Cpu(
            usage_ns=cpu_ns,
            user_ns=cpu_ns * 2 // 3,
            system_ns=cpu_ns // 3,
            throttled_ns=cpu_ns // 10,
            periods=100,
            throttled_periods=7,
        ),
        memory=Memory(
            current_bytes=mem, peak_bytes=mem + 4096, working_set_bytes=mem - 4096, limit_bytes=None
        ),
        pids=2,
    )


def java_fingerprint() -> Fingerprint:
    return Fingerprint(
        os="rhel",
        osVersion="8.10",
        kind="Java",
        kindVersion="17.0.13",
        kindImplementer="Red Hat, Inc.",
        runtimes=[RuntimeComponent(name="Quarkus", version="3.15.3.redhat-00002")],
    )


def pod_with(
    ns: str,
    name: str,
    uid: str,
    containers: list[tuple[str, Fingerprint | None]],
    *,
    runtime: Runtime = "containerd",
    cpu_ns: int = 3_000_000_000,
    taken_at: float = 1_700_000_000.0,
) -> tuple[Pod, list[Container]]:
    """A pod cgroup plus its sandbox and app containers as the extractor reports them."""
    qos_dir = f"/kubepods/burstable/pod{uid}"
    out = [
        Container(
            id=cid(f"{uid}-sandbox"),
            runtime=runtime,
            namespace=ns,
            pod_name=name,
            pod_uid=uid,
            qos="burstable",
            sandbox=True,
            started_at=taken_at - 500,
            runtime_seconds=500.0,
            usage=usage(f"{qos_dir}/{cid(uid + '-sandbox')}", 1_000_000, 1 << 20),
        )
    ]
    for i, (cname, fp) in enumerate(containers):
        out.append(
            Container(
                id=cid(f"{uid}-{cname}"),
                runtime=runtime,
                name=cname,
                namespace=ns,
                pod_name=name,
                pod_uid=uid,
                qos="burstable",
                image=f"registry.example/{cname}:1",
                pids=[1000 + i, 2000 + i],
                started_at=taken_at - 100 - i,
                runtime_seconds=100.0 + i,
                usage=usage(
                    f"{qos_dir}/{cid(uid + '-' + cname)}", cpu_ns * (i + 1), (50 + i) << 20
                ),
                fingerprint=fp,
            )
        )
    pod = Pod(
        uid=uid,
        namespace=ns,
        name=name,
        qos="burstable",
        usage=usage(qos_dir, cpu_ns * (len(containers) + 2), 300 << 20),
        container_ids=[c.id for c in out],
    )
    return pod, out


def snapshot(
    pods: list[tuple[Pod, list[Container]]], taken_at: float = 1_700_000_000.0
) -> Snapshot:
    return Snapshot(
        node="node-a",
        taken_at=taken_at,
        cgroup_version="v1",
        pods=[p for p, _ in pods],
        containers=[c for _, cs in pods for c in cs],
    )


def standard_snapshot(taken_at: float = 1_700_000_000.0, cpu_ns: int = 3_000_000_000) -> Snapshot:
    """Two pods: a Quarkus app with a sidecar (no fingerprint) and a CRI-O Go service."""
    golang = Fingerprint(os="debian", osVersion="12", kind="Golang", kindVersion="go1.22.6")
    return snapshot(
        [
            pod_with(
                "shop",
                "web-1",
                "11111111-1111-1111-1111-111111111111",
                [("main", java_fingerprint()), ("proxy", Fingerprint())],
                cpu_ns=cpu_ns,
                taken_at=taken_at,
            ),
            pod_with(
                "infra",
                "dns-7",
                "22222222-2222-2222-2222-222222222222",
                [("coredns", golang)],
                runtime="crio",
                cpu_ns=cpu_ns,
                taken_at=taken_at,
            ),
        ],
        taken_at=taken_at,
    )


class FakeLookup:
    """The reflector interface, over a fixed list of PodMeta."""

    def __init__(self, pods: list[PodMeta], state: str = "synced") -> None:
        self.pods = pods
        self.state = state
        self.last_error: str | None = None
        self.synced = state == "synced"
        self.dropped_events = 0
        self.conversion_errors = 0
        self.generation = 0

    def get_by_uid(self, uid: str) -> PodMeta | None:
        return next((p for p in self.pods if uid in (p.uid, p.cgroup_uid)), None)

    def get_by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerStatus] | None:
        for p in self.pods:
            for c in p.containers:
                if c.container_id == container_id:
                    return p, c
        return None


def api_meta_for(snap: Snapshot) -> list[PodMeta]:
    """What the API server would say about the snapshot's pods (API names differ on purpose:
    the API is the authority, so views must show these, not the runtime's)."""
    metas = []
    for pod in snap.pods:
        members = [c for c in snap.containers if c.pod_uid == pod.uid and not c.sandbox]
        metas.append(
            PodMeta(
                uid=pod.uid,
                cgroup_uid=pod.uid,
                namespace=f"{pod.namespace}",
                name=f"{pod.name}-api",
                labels={
                    "app": f"{pod.name}",
                    "tier": "backend" if pod.namespace == "shop" else "sys",
                },
                annotations={"note": "from-api"},
                owner=Owner(kind="Deployment", name=f"{pod.name}-deploy"),
                qos="burstable",
                phase="Running",
                start_time=snap.taken_at - 600,
                containers=[
                    ContainerStatus(
                        name=f"{c.name}-api",
                        container_id=c.id,
                        runtime="cri-o" if c.runtime == "crio" else c.runtime,
                        image=f"{c.image}-api",
                        image_id=f"sha256:{c.id}",
                        restart_count=3,
                        state="running",
                        started_at=snap.taken_at - 90,
                    )
                    for c in members
                ],
            )
        )
    return metas


@asynccontextmanager
async def client_for(
    state: State, lookup: FakeLookup | None = None, **settings: object
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    cfg = Settings(kube_enabled=lookup is not None, node_name="node-a", **settings)  # type: ignore[arg-type]
    app = build_app(state, lookup, stale_after_seconds=cfg.stale_after_seconds)
    async with TestClient(TestServer(app)) as client:
        yield client


WORKLOAD_UID = "4aa017de-86c6-41cd-b4ad-21b66575685c"
WORKLOAD_POD = f"/kubepods/burstable/pod{WORKLOAD_UID}"


def workload_snapshot(
    taken_at: float = 1_700_000_000.0,
    cpu_ns: int = 3_000_000_000,
    *,
    cgroup_version: Literal["v1", "v2", "hybrid"] = "v2",
    details_at: float | None = None,
) -> Snapshot:
    """One pod with every signal the extractor reads: a pause sandbox (holding the pod's
    network), an app container under a CFS quota with pressure and block I/O, the pod
    cgroup with the same; counters grow with ``cpu_ns`` so two of these make rates."""
    sandbox_id, app_id = cid("workload-sandbox"), cid("workload-app")
    k = cpu_ns // 1_000_000

    def counters(cgroup: str, share: int) -> Usage:
        return Usage(
            cgroup=cgroup,
            cpu=Cpu(
                usage_ns=cpu_ns * share,
                user_ns=cpu_ns * share * 2 // 3,
                system_ns=cpu_ns * share // 3,
                throttled_ns=cpu_ns * share // 20,
                periods=10 * k,
                throttled_periods=k,
                quota_us=10_000,
                period_us=100_000,
            ),
            memory=Memory(
                current_bytes=(40 + share) << 20,
                peak_bytes=(60 + share) << 20,
                working_set_bytes=(30 + share) << 20,
                limit_bytes=64 << 20,
                rss_bytes=(20 + share) << 20,
                cache_bytes=(10 + share) << 20,
                oom_kills=share - 1,
            ),
            pids=3,
            pressure=Pressure(
                cpu_some_ns=k * 1000 * share,
                cpu_full_ns=k * 400 * share,
                memory_some_ns=k * 10,
                memory_full_ns=k * 5,
                io_some_ns=k * 30 * share,
                io_full_ns=k * 20 * share,
            ),
            block_io=[
                BlockDevice(
                    major=254,
                    minor=0,
                    read_bytes=k * 4096 * share,
                    write_bytes=k * 8192 * share,
                    reads=k * share,
                    writes=2 * k * share,
                )
            ],
            details_at=details_at,
        )

    sandbox = Container(
        id=sandbox_id,
        runtime="containerd",
        namespace="scraper",
        pod_name="e2e-deployment-79967c5968-zjslc",
        pod_uid=WORKLOAD_UID,
        qos="burstable",
        sandbox=True,
        image="registry.k8s.io/pause:3.10.1",
        cgroup=f"{WORKLOAD_POD}/{sandbox_id}",
        pids=[4100],
        started_at=taken_at - 600.4,
        runtime_seconds=600.4,
    )
    app = Container(
        id=app_id,
        runtime="containerd",
        name="compute-pi-digits",
        namespace="scraper",
        pod_name="e2e-deployment-79967c5968-zjslc",
        pod_uid=WORKLOAD_UID,
        qos="burstable",
        image="docker.io/library/perl:5.34.0",
        cgroup=f"{WORKLOAD_POD}/{app_id}",
        pids=[4200, 4201],
        started_at=taken_at - 590.7,
        runtime_seconds=590.7,
        usage=counters(f"{WORKLOAD_POD}/{app_id}", 2),
    )
    pod = Pod(
        uid=WORKLOAD_UID,
        namespace="scraper",
        name="e2e-deployment-79967c5968-zjslc",
        qos="burstable",
        usage=counters(WORKLOAD_POD, 3),
        container_ids=[sandbox_id, app_id],
        network=[
            Interface(
                name="eth0",
                rx_bytes=446 * k,
                rx_packets=5 * k,
                rx_errors=0,
                rx_dropped=1,
                tx_bytes=200 * k,
                tx_packets=3 * k,
                tx_errors=0,
                tx_dropped=0,
            )
        ],
        host_network=False,
        network_at=details_at,
    )
    return Snapshot(
        node="datagen-1-35",
        taken_at=taken_at,
        cgroup_version=cgroup_version,
        pods=[pod],
        containers=[sandbox, app],
        block_devices={"254:0": "vda"},
    )


def workload_meta(
    *, cpu_request_millicores: int = 40, memory_request_bytes: int = 15 << 20
) -> PodMeta:
    """The API server's view of ``workload_snapshot``'s pod: a Deployment's, with requests
    and limits, a restartable init container (sidecar) and an ordinary init container."""
    return PodMeta(
        uid=WORKLOAD_UID,
        cgroup_uid=WORKLOAD_UID,
        namespace="scraper",
        name="e2e-deployment-79967c5968-zjslc",
        node="datagen-1-35",
        owner=Owner(kind="Deployment", name="e2e-deployment"),
        qos="burstable",
        phase="Running",
        scheduler="default-scheduler",
        priority=0,
        containers=[
            ContainerStatus(
                name="setup",
                kind="init",
                cpu_request_millicores=500,
                memory_request_bytes=8 << 20,
                cpu_limit_millicores=500,
                memory_limit_bytes=8 << 20,
            ),
            ContainerStatus(
                name="log-shipper",
                kind="sidecar",
                cpu_request_millicores=10,
                memory_request_bytes=4 << 20,
                cpu_limit_millicores=20,
                memory_limit_bytes=8 << 20,
            ),
            ContainerStatus(
                name="compute-pi-digits",
                container_id=cid("workload-app"),
                runtime="containerd",
                image="docker.io/library/perl:5.34.0",
                state="running",
                cpu_request_millicores=cpu_request_millicores,
                memory_request_bytes=memory_request_bytes,
                cpu_limit_millicores=80,
                memory_limit_bytes=30 << 20,
            ),
        ],
    )
