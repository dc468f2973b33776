"""/v1/containers, /v1/pods, health and readiness, the State and the extractor client.

Expected numbers are derived from the snapshot objects the test feeds in (the kernel's
integers), never typed in.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from exporter.http.health import readiness
from exporter.kube.selectors import SelectorError, parse_selector
from exporter.node.source import ExtractorClient, ExtractorError
from exporter.node.state import State
from exporter.node.views import Views
from exporter.settings import Settings
from extractor.contract import Container, Cpu, Fingerprint, Snapshot, Usage
from tests.support.exporter_doubles import FakeLookup, api_meta_for, client_for, standard_snapshot

T0 = 1_700_000_000.0


def _two_passes(dt: float = 10.0) -> State:
    state = State()
    state.record(standard_snapshot(T0, cpu_ns=3_000_000_000))
    state.record(standard_snapshot(T0 + dt, cpu_ns=4_000_000_000))
    return state


async def _get(state: State, path: str, lookup: FakeLookup | None = None) -> tuple[int, Any]:
    async with client_for(state, lookup) as client:
        resp = await client.get(path)
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.status, await resp.json()


async def test_containers_numbers_equal_the_snapshot_and_rates_are_deltas() -> None:
    state = _two_passes()
    assert state.previous is not None and state.snapshot is not None
    before = {c.id: c for c in state.previous.containers}
    status, body = await _get(state, "/v1/containers")
    assert status == 200
    assert body["metadataSource"] == "runtime"
    apps = [c for c in state.snapshot.containers if not c.sandbox]
    assert [d["id"] for d in body["containers"]] == [c.id for c in apps]
    for doc, c in zip(body["containers"], apps, strict=True):
        assert c.usage is not None and c.usage.cpu is not None and c.usage.memory is not None
        assert doc["cpu"]["totalSeconds"] == c.usage.cpu.usage_ns / 1e9
        assert doc["cpu"]["userSeconds"] == (c.usage.cpu.user_ns or 0) / 1e9
        assert doc["cpu"]["systemSeconds"] == (c.usage.cpu.system_ns or 0) / 1e9
        assert doc["cpu"]["throttledSeconds"] == (c.usage.cpu.throttled_ns or 0) / 1e9
        old = before[c.id].usage
        assert old is not None and old.cpu is not None
        expected_rate = (c.usage.cpu.usage_ns - old.cpu.usage_ns) / 1e9 / 10.0
        assert doc["cpu"]["usageRateCores"] == pytest.approx(expected_rate)
        assert doc["memory"]["workingSetBytes"] == c.usage.memory.working_set_bytes
        assert doc["memory"]["peakBytes"] == c.usage.memory.peak_bytes
        assert doc["memory"]["currentBytes"] == c.usage.memory.current_bytes
        assert doc["runtimeSeconds"] == c.runtime_seconds
        assert doc["namespace"] == c.namespace and doc["pod"] == c.pod_name
        assert doc["container"] == c.name and doc["metadataSource"] == "runtime"
        assert doc["image"] == c.image
        assert doc["restarts"] is None and doc["labels"] == {}
        fp = c.fingerprint.model_dump(exclude_none=True) if c.fingerprint else None
        if fp is not None and not fp.get("runtimes"):
            fp.pop("runtimes")
        assert doc["fingerprint"] == fp


async def test_api_metadata_wins_and_is_labelled() -> None:
    state = _two_passes()
    assert state.snapshot is not None
    metas = api_meta_for(state.snapshot)
    status, body = await _get(state, "/v1/containers", FakeLookup(metas))
    assert status == 200 and body["metadataSource"] == "api"
    by_id = {st.container_id: (m, st) for m in metas for st in m.containers}
    for doc in body["containers"]:
        meta, st = by_id[doc["id"]]
        assert (doc["namespace"], doc["pod"], doc["container"]) == (
            meta.namespace,
            meta.name,
            st.name,
        )
        assert doc["metadataSource"] == "api"
        assert doc["restarts"] == st.restart_count
        assert meta.owner is not None
        assert doc["owner"] == {"kind": meta.owner.kind, "name": meta.owner.name}
        assert doc["labels"] == meta.labels and doc["annotations"] == meta.annotations
        assert doc["image"] == st.image and doc["imageId"] == st.image_id


@pytest.mark.parametrize("reflector_state", ["disconnected", "starting"])
async def test_unusable_api_falls_back_to_runtime_names(reflector_state: str) -> None:
    state = _two_passes()
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot), state=reflector_state)
    _, body = await _get(state, "/v1/containers", lookup)
    assert body["metadataSource"] == "runtime"
    assert all(d["metadataSource"] == "runtime" for d in body["containers"])
    assert not any(d["pod"].endswith("-api") for d in body["containers"])


@pytest.mark.parametrize(
    ("query", "pods"),
    [
        ("namespace=shop", {"web-1-api"}),
        ("pod=dns-7-api", {"dns-7-api"}),
        ("labelSelector=app%3Dweb-1", {"web-1-api"}),
        ("labelSelector=app!%3Dweb-1", {"dns-7-api"}),
        ("labelSelector=tier%20in%20(sys,%20other)", {"dns-7-api"}),
        ("labelSelector=tier%20notin%20(sys)", {"web-1-api"}),
        ("labelSelector=app", {"web-1-api", "dns-7-api"}),
        ("labelSelector=!app", set()),
        ("labelSelector=app,tier%3Dbackend", {"web-1-api"}),
    ],
)
async def test_filters(query: str, pods: set[str]) -> None:
    state = _two_passes()
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot))
    _, body = await _get(state, "/v1/containers?" + query, lookup)
    assert {d["pod"] for d in body["containers"]} == pods
    _, pod_body = await _get(state, "/v1/pods?" + query, lookup)
    assert {p["pod"] for p in pod_body["pods"]} == pods


async def test_container_filter() -> None:
    state = _two_passes()
    _, body = await _get(state, "/v1/containers?container=proxy")
    assert [d["container"] for d in body["containers"]] == ["proxy"]


@pytest.mark.parametrize(
    "query", ["labelSelector=a%20in%20(b", "labelSelector=%3D%3Dx", "bogus=1", "labelSelector=a%3E"]
)
async def test_bad_queries_are_json_400(query: str) -> None:
    status, body = await _get(_two_passes(), "/v1/containers?" + query)
    assert status == 400
    assert isinstance(body["error"], str) and body["error"]


async def test_pods_totals_come_from_the_pod_cgroup() -> None:
    state = _two_passes()
    assert state.snapshot is not None and state.previous is not None
    _, body = await _get(state, "/v1/pods")
    pods = {p.uid: p for p in state.snapshot.pods}
    old = {p.uid: p for p in state.previous.pods}
    assert {p["uid"] for p in body["pods"]} == set(pods)
    for doc in body["pods"]:
        pod = pods[doc["uid"]]
        assert pod.usage is not None and pod.usage.cpu is not None
        assert doc["cpu"]["totalSeconds"] == pod.usage.cpu.usage_ns / 1e9
        members = [c for c in state.snapshot.containers if c.pod_uid == pod.uid and not c.sandbox]
        sum_members = sum(c.usage.cpu.usage_ns for c in members if c.usage and c.usage.cpu)
        # the pod cgroup also holds exited containers and the sandbox: never the sum
        assert pod.usage.cpu.usage_ns != sum_members
        prev = old[pod.uid].usage
        assert prev is not None and prev.cpu is not None
        rate = (pod.usage.cpu.usage_ns - prev.cpu.usage_ns) / 1e9 / 10.0
        assert doc["cpu"]["usageRateCores"] == pytest.approx(rate)
        assert [c["id"] for c in doc["containers"]] == [c.id for c in members]
        assert doc["runtimeSeconds"] == max(
            c.runtime_seconds
            for c in state.snapshot.containers
            if c.pod_uid == pod.uid and c.runtime_seconds is not None
        )


async def test_counter_reset_gives_no_rate() -> None:
    state = State()
    state.record(standard_snapshot(T0, cpu_ns=5_000_000_000))
    state.record(standard_snapshot(T0 + 10, cpu_ns=1_000_000_000))
    _, body = await _get(state, "/v1/containers")
    assert all(d["cpu"]["usageRateCores"] is None for d in body["containers"])


async def test_time_going_backwards_gives_no_rate() -> None:
    state = State()
    state.record(standard_snapshot(T0 + 10, cpu_ns=1_000_000_000))
    state.record(standard_snapshot(T0, cpu_ns=5_000_000_000))
    assert state.rates is None


async def test_no_snapshot_is_503_json() -> None:
    state = State()
    state.last_error = "extractor socket /run/x.sock: cannot connect"
    status, body = await _get(state, "/v1/containers")
    assert status == 503 and "cannot connect" in body["error"]


async def test_cached_body_follows_new_snapshots() -> None:
    state = _two_passes()
    async with client_for(state) as client:
        first = await (await client.get("/v1/containers")).read()
        again = await (await client.get("/v1/containers")).read()
        state.record(standard_snapshot(T0 + 20, cpu_ns=9_000_000_000))
        fresh = await (await client.get("/v1/containers")).json()
    assert first == again
    assert fresh["containers"][0]["cpu"]["totalSeconds"] == 9.0


async def test_health_and_readiness() -> None:
    state = State()
    async with client_for(state) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await (await client.get("/livez")).json()) == {"status": "ok"}
        resp = await client.get("/readyz")
        assert resp.status == 503 and (await resp.json())["ready"] is False
        state.record(standard_snapshot())
        body = await (await client.get("/readyz")).json()
        assert body["ready"] is True and body["status"] == "ok"


async def test_readiness_with_the_api_down_is_degraded_not_failed() -> None:
    state = _two_passes()
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot), state="starting")
    async with client_for(state, lookup) as client:
        assert (await client.get("/readyz")).status == 503
        lookup.state = "disconnected"
        lookup.last_error = "connection refused"
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 200 and body["status"] == "degraded"
        assert body["metadataSource"] == "runtime"
        assert any("connection refused" in r for r in body["reasons"])
        lookup.state = "synced"
        assert (await (await client.get("/readyz")).json())["metadataSource"] == "api"


async def test_unknown_route_is_json_404() -> None:
    status, body = await _get(_two_passes(), "/v1/nothing")
    assert status == 404 and "/v1/nothing" in body["error"]


def test_selector_parser() -> None:
    sel = parse_selector("a=1, b!=2, c in (x, y), d notin (z), e, !f, g>3")
    assert sel.matches({"a": "1", "b": "3", "c": "y", "d": "w", "e": "", "g": "4"})
    assert not sel.matches({"a": "1", "b": "3", "c": "y", "d": "w", "e": "", "g": "2"})
    assert not sel.matches({"a": "1", "b": "3", "c": "y", "d": "w", "e": "", "g": "4", "f": ""})
    assert sel.as_label_selector()["matchLabels"] == {"a": "1"}
    for bad in ["a in (", "=x", "a=b=c", "a b", "a in ()", "-bad-=1", "a>x"]:
        with pytest.raises(SelectorError):
            parse_selector(bad)


async def test_state_counts_failed_passes_and_keeps_serving() -> None:
    snaps = [standard_snapshot(T0)]

    async def fetch(max_age: float | None = None) -> Snapshot:
        if snaps:
            return snaps.pop()
        raise ExtractorError("extractor socket /x: cannot connect")

    state = State(fetch, 10.0)
    assert await state.poll_once() is True
    assert await state.poll_once() is False
    assert (state.passes, state.errors, state.version) == (2, 1, 1)
    assert state.snapshot is not None and state.last_error and "cannot connect" in state.last_error


@asynccontextmanager
async def _unix_server(handler: Any) -> AsyncIterator[str]:
    path = os.path.join(tempfile.gettempdir(), f"ri-h5a-{uuid.uuid4().hex[:12]}.sock")
    app = web.Application()
    app.router.add_get("/v1/snapshot", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.UnixSite(runner, path)
    await site.start()
    try:
        yield path
    finally:
        await runner.cleanup()
        if os.path.exists(path):
            os.unlink(path)


async def test_extractor_client_reads_a_snapshot_over_a_unix_socket() -> None:
    snap = standard_snapshot()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=snap.model_dump_json(), content_type="application/json")

    async with _unix_server(ok) as path:
        client = ExtractorClient(path, 5.0)
        try:
            assert await client.fetch() == snap
        finally:
            await client.aclose()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"oops", 500, "HTTP 500: oops"),
        (b"not json", 200, "not a valid snapshot"),
        (b'{"node": "n"}', 200, "not a valid snapshot"),
        (
            b'{"schema_version": 99, "node": "n", "taken_at": 1, "cgroup_version": "v1"}',
            200,
            "newer",
        ),
        (  # a newer extractor's fields this exporter does not know: the version says why
            b'{"schema_version": 99, "node": "n", "taken_at": 1, "cgroup_version": "v1",'
            b' "gpus": []}',
            200,
            "snapshot schema 99 is newer than this exporter's",
        ),
    ],
)
async def test_extractor_client_errors(body: bytes, status: int, message: str) -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status)

    async with _unix_server(bad) as path:
        client = ExtractorClient(path, 5.0)
        try:
            with pytest.raises(ExtractorError, match=message):
                await client.fetch()
        finally:
            await client.aclose()


async def test_extractor_client_missing_socket_and_silent_server() -> None:
    missing = f"/tmp/ri-h5a-missing-{uuid.uuid4().hex}.sock"
    client = ExtractorClient(missing, 5.0)
    with pytest.raises(ExtractorError, match="cannot connect") as info:
        await client.fetch()
    assert missing in str(info.value)
    await client.aclose()

    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async with _unix_server(silent) as path:
        client = ExtractorClient(path, 0.2)
        try:
            with pytest.raises(ExtractorError, match=r"no answer within 0\.2s"):
                await client.fetch()
        finally:
            release.set()
            await client.aclose()


async def test_containers_outside_kubernetes_group_under_their_runtime() -> None:
    bare = Container(
        id="f" * 64,
        runtime="containerd",
        name="buildkit",
        usage=Usage(cgroup="/system.slice/x", cpu=Cpu(usage_ns=5)),
        fingerprint=Fingerprint(error="root: symlink loop at /etc/os-release"),
    )
    snap = standard_snapshot(T0)
    snap.containers.append(bare)
    state = State()
    state.record(snap)
    _, body = await _get(state, "/v1/containers?namespace=containerd")
    [doc] = body["containers"]
    assert (doc["pod"], doc["container"], doc["podUid"]) == ("buildkit", "buildkit", None)
    assert doc["fingerprint"] == {"error": "root: symlink loop at /etc/os-release"}
    async with client_for(state) as client:
        ire = await (await client.get("/gather_runtime_info?hash=false")).json()
    # the replaced tool lists only Kubernetes containers (its crictl ps knows no others)
    assert "containerd" not in ire
    assert f"containerd://{bare.id}" not in {
        k for pods in ire.values() for c in pods.values() for k in c
    }


def test_readiness_names_a_stale_snapshot_and_a_failing_extractor() -> None:
    state = _two_passes()
    settings = Settings(kube_enabled=False, poll_interval_seconds=10, extractor_timeout_seconds=5)
    stale_after = settings.stale_after_seconds
    assert state.last_success is not None
    body, ready = readiness(Views(state, None), stale_after, state.last_success + 1)
    assert ready and body["reasons"] == []
    state.last_error = "extractor socket /x: no answer within 5s"
    body, ready = readiness(Views(state, None), stale_after, state.last_success + 36)
    assert ready and body["status"] == "degraded"
    assert body["reasons"] == [
        "last snapshot pass failed: extractor socket /x: no answer within 5s",
        "snapshot is 36s old",
    ]
    assert body["reasonCodes"] == ["pass-failed", "snapshot-stale"]


async def test_a_static_pod_is_named_by_its_mirror_uid_everywhere() -> None:
    """The kubelet names a static pod's cgroup by its config hash; the API's mirror pod
    has a UID of its own. Every document (and the Prometheus label) uses the API UID, and
    /v1/pods also gives the cgroup's."""
    state = _two_passes()
    assert state.snapshot is not None
    metas = api_meta_for(state.snapshot)
    static = metas[0]
    mirror_uid = "0e3b2c1d-0000-4000-8000-00000000beef"
    metas[0] = static.model_copy(update={"uid": mirror_uid, "cgroup_uid": static.uid})
    lookup = FakeLookup(metas)
    _, pods = await _get(state, "/v1/pods", lookup)
    doc = next(p for p in pods["pods"] if p["cgroupUid"] == static.uid)
    assert doc["uid"] == mirror_uid
    assert {c["podUid"] for c in doc["containers"]} == {mirror_uid}
    others = [p for p in pods["pods"] if p is not doc]
    assert others and all(p["uid"] == p["cgroupUid"] for p in others)
    async with client_for(state, lookup) as client:
        metrics = await (await client.get("/metrics")).text()
    assert f'pod_uid="{mirror_uid}"' in metrics
    assert f'pod_uid="{static.uid}"' not in metrics


async def test_a_pod_change_shows_without_waiting_for_the_next_snapshot() -> None:
    state = _two_passes()
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot))
    async with client_for(state, lookup) as client:
        first = await (await client.get("/v1/pods")).json()
        lookup.pods = [p.model_copy(update={"labels": {"relabelled": "yes"}}) for p in lookup.pods]
        unchanged = await (await client.get("/v1/pods")).json()
        lookup.generation += 1  # what the reflector does on every cache change
        second = await (await client.get("/v1/pods")).json()
    assert unchanged == first, "without a cache change the served view is reused"
    assert {
        p["labels"].get("relabelled") for p in second["pods"] if p["metadataSource"] == "api"
    } == {"yes"}
    assert second["takenAt"] == first["takenAt"]
