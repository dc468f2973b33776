"""Requests, limits, efficiency and the new kernel signals in /v1/containers, /v1/pods and
/v1/namespaces. Expected numbers come from the snapshots and the pod metadata fed in."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.node.resources import container_resources, pod_resources
from exporter.node.state import State
from tests.support.exporter_doubles import (
    FakeLookup,
    client_for,
    workload_meta,
    workload_snapshot,
)

T0 = 1_782_468_000.0


def two_passes() -> tuple[State, float]:
    """Two snapshots 10 s apart; returns the state and the pod cgroup's CPU rate."""
    state = State()
    before, after = workload_snapshot(T0, 3_000_000_000), workload_snapshot(T0 + 10, 3_500_000_000)
    state.record(before)
    state.record(after)
    b, a = before.pods[0].usage, after.pods[0].usage
    assert b and a and b.cpu and a.cpu
    return state, (a.cpu.usage_ns - b.cpu.usage_ns) / 1e9 / 10


async def get(path: str, state: State, lookup: FakeLookup | None) -> tuple[int, Any]:
    async with client_for(state, lookup) as client:
        resp = await client.get(path)
        return resp.status, await resp.json()


async def test_containers_carry_requests_limits_efficiency_and_the_new_counters() -> None:
    state, _ = two_passes()
    meta = workload_meta()
    status, body = await get("/v1/containers", state, FakeLookup([meta]))
    assert status == 200
    (doc,) = body["containers"]
    spec = container_resources(next(c for c in meta.containers if c.kind == "regular"))
    assert doc["resources"] == {
        "requests": {"cpuCores": spec.cpu_request_cores, "memoryBytes": spec.memory_request_bytes},
        "limits": {"cpuCores": spec.cpu_limit_cores, "memoryBytes": spec.memory_limit_bytes},
    }
    assert state.snapshot is not None
    app = state.snapshot.containers[1]
    assert app.usage and app.usage.memory and app.usage.cpu and app.usage.pressure
    rate = doc["cpu"]["usageRateCores"]
    assert rate is not None and spec.cpu_request_cores
    assert doc["efficiency"]["cpu"]["efficiency"] == pytest.approx(rate / spec.cpu_request_cores)
    assert doc["efficiency"]["cpu"]["billableCores"] == pytest.approx(
        max(rate, spec.cpu_request_cores)
    )
    ws = app.usage.memory.working_set_bytes
    assert ws is not None and spec.memory_request_bytes
    assert doc["efficiency"]["memory"]["efficiency"] == ws / spec.memory_request_bytes
    assert doc["efficiency"]["memory"]["idleBytes"] == max(spec.memory_request_bytes - ws, 0)
    assert doc["cpu"]["quotaMicroseconds"] == app.usage.cpu.quota_us
    assert doc["cpu"]["limitCores"] == (app.usage.cpu.quota_us or 0) / (
        app.usage.cpu.period_us or 1
    )
    assert doc["memory"]["oomKills"] == app.usage.memory.oom_kills
    assert doc["pressure"]["ioSomeSeconds"] == (app.usage.pressure.io_some_ns or 0) / 1e9
    (device,) = doc["blockIo"]
    assert device["device"] == "vda" and device["writeBytes"] == app.usage.block_io[0].write_bytes  # type: ignore[index]


async def test_pods_carry_effective_requests_network_and_efficiency() -> None:
    state, pod_rate = two_passes()
    meta = workload_meta()
    status, body = await get("/v1/pods", state, FakeLookup([meta]))
    assert status == 200
    (doc,) = body["pods"]
    want = pod_resources(meta)
    assert doc["resources"]["requests"] == {
        "cpuCores": want.cpu_request_cores,
        "memoryBytes": want.memory_request_bytes,
    }
    assert doc["cpu"]["usageRateCores"] == pytest.approx(pod_rate)
    assert want.cpu_request_cores
    assert doc["efficiency"]["cpu"]["efficiency"] == pytest.approx(
        pod_rate / want.cpu_request_cores
    )
    assert doc["efficiency"]["cpu"]["idleCores"] == pytest.approx(
        max(want.cpu_request_cores - pod_rate, 0)
    )
    assert state.snapshot is not None and state.snapshot.pods[0].network is not None
    (eth0,) = doc["network"]
    assert (
        eth0["interface"] == "eth0"
        and eth0["rxBytes"] == state.snapshot.pods[0].network[0].rx_bytes
    )
    assert doc["hostNetwork"] is False


async def test_runtime_names_only_have_no_requests_and_no_efficiency() -> None:
    state, _ = two_passes()
    _, body = await get("/v1/pods", state, None)
    (doc,) = body["pods"]
    assert doc["resources"]["requests"] == {"cpuCores": None, "memoryBytes": None}
    assert doc["efficiency"]["cpu"]["efficiency"] is None
    assert doc["efficiency"]["cpu"]["billableCores"] == doc["cpu"]["usageRateCores"]


async def test_namespaces_add_up_pods_per_namespace_and_owner() -> None:
    state, pod_rate = two_passes()
    meta = workload_meta()
    status, body = await get("/v1/namespaces", state, FakeLookup([meta]))
    assert status == 200
    (ns,) = body["namespaces"]
    want = pod_resources(meta)
    assert ns["namespace"] == "scraper" and ns["pods"] == 1
    assert ns["cpu"]["usedCores"] == pytest.approx(pod_rate)
    assert ns["cpu"]["requestedCores"] == want.cpu_request_cores
    assert ns["memory"]["limitBytes"] == want.memory_limit_bytes
    assert want.cpu_request_cores
    assert ns["cpu"]["efficiency"] == pytest.approx(pod_rate / want.cpu_request_cores)
    (owner,) = ns["owners"]
    assert (owner["kind"], owner["name"]) == ("Deployment", "e2e-deployment")
    assert owner["cpu"] == ns["cpu"] and owner["memory"] == ns["memory"]
    status, body = await get("/v1/namespaces?namespace=other", state, FakeLookup([meta]))
    assert status == 200 and body["namespaces"] == []


async def test_namespaces_refuses_unknown_parameters() -> None:
    state, _ = two_passes()
    status, body = await get("/v1/namespaces?pod=x", state, None)
    assert status == 400 and "unknown query parameter" in body["error"]
