"""`GET /v1/events`: a real aiohttp client reads the SSE stream while the fake API changes pods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.feeds.lifecycle import diff
from exporter.feeds.sse import add_routes
from exporter.kube.client import KubeClient, load_configuration
from exporter.kube.pods import pod_meta
from exporter.kube.reflector import PodReflector
from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod

NODE = "node-a"


class Frames:
    """Reads SSE frames (``id``/``event``/``data`` fields and ``:`` comments) from a stream."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self) -> dict[str, Any] | None:
        """The next event frame, or None at end of stream."""
        fields: dict[str, str] = {}
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), timeout=15)
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line:
                key, _, value = line.partition(": ")
                fields[key] = value
            elif fields:
                data: dict[str, Any] = json.loads(fields["data"])
                assert fields["event"] == data["type"]
                if data["type"] != "resync":
                    assert fields["id"] == f"{data['containerID']}/{data['type']}"
                return data

    async def take(self, count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            frame = await self.next()
            assert frame is not None, "stream ended early"
            out.append(frame)
        return out


async def wait_for_value(predicate: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not predicate():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.3) as server:
        yield server


@pytest.fixture
async def reflector(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[PodReflector]:
    client = KubeClient(load_configuration(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))
    r = PodReflector(client, NODE, watch_timeout_seconds=1, read_timeout_seconds=3)
    await r.start()
    await wait_for_value(lambda: r.synced, "reflector sync")
    yield r
    await r.stop()
    await client.aclose()


@pytest.fixture
async def http(reflector: PodReflector) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_routes(app, reflector, heartbeat_seconds=0.3)
    async with TestClient(TestServer(app)) as client:
        yield client


async def open_stream(
    http: TestClient[web.Request, web.Application], reflector: PodReflector, query: str = ""
) -> Frames:
    before = reflector.subscribers
    response = await http.get(f"/v1/events{query}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    await wait_for_value(lambda: reflector.subscribers > before, "subscription")
    return Frames(response)


async def test_container_lifecycle_becomes_start_and_stop_events(
    api: FakeApiServer,
    reflector: PodReflector,
    http: TestClient[web.Request, web.Application],
) -> None:
    frames = await open_stream(http, reflector)
    app = FakeContainer("app", requests={"cpu": "100m"})
    raw = api.add_pod(
        make_pod(
            "web-1", "shop", node=NODE, containers=[app], host_ip="10.1.0.4", pod_ip="10.244.3.9"
        )
    )
    (start,) = await frames.take(1)
    status = raw["status"]["containerStatuses"][0]
    assert start == {
        "type": "start",
        "podUid": raw["metadata"]["uid"],
        "containerID": status["containerID"],
        "containerName": "app",
        "containerKind": "regular",
        "image": status["image"],
        "podName": "web-1",
        "namespace": "shop",
        "node": NODE,
        "hostIP": "10.1.0.4",
        "podIP": "10.244.3.9",
        "qosClass": raw["status"]["qosClass"],
        "startTime": raw["status"]["startTime"],
        "startedAt": status["state"]["running"]["startedAt"],
    }

    first_id = app.container_id
    app.state, app.exit_code = "terminated", 2
    ended = api.update_pod(make_pod("web-1", "shop", node=NODE, containers=[app]))
    (stop,) = await frames.take(1)
    terminated = ended["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (stop["type"], stop["containerID"]) == ("stop", start["containerID"])
    assert stop["exitCode"] == 2 == terminated["exitCode"]
    assert stop["finishedAt"] == terminated["finishedAt"]

    app.state, app.container_id, app.restart_count = "running", None, 1
    restarted = api.update_pod(make_pod("web-1", "shop", node=NODE, containers=[app]))
    (again,) = await frames.take(1)
    assert again["type"] == "start"
    assert again["containerID"] == restarted["status"]["containerStatuses"][0]["containerID"]
    assert app.container_id != first_id

    api.delete_pod("shop", "web-1")
    (gone,) = await frames.take(1)
    assert (gone["type"], gone["containerID"]) == ("stop", again["containerID"])
    assert "exitCode" not in gone and "finishedAt" not in gone


async def test_short_lived_container_gets_start_and_stop(
    api: FakeApiServer,
    reflector: PodReflector,
    http: TestClient[web.Request, web.Application],
) -> None:
    frames = await open_stream(http, reflector)
    init = FakeContainer("migrate", state="terminated", exit_code=0)
    api.add_pod(make_pod("job-1", node=NODE, containers=["app"], init_containers=[init]))
    events = await frames.take(3)
    init_events = [
        (e["type"], e.get("exitCode")) for e in events if e["containerName"] == "migrate"
    ]
    assert init_events == [("start", None), ("stop", 0)]
    assert {e["containerKind"] for e in events} == {"init", "regular"}


async def test_namespace_filter_and_bad_namespace(
    api: FakeApiServer,
    reflector: PodReflector,
    http: TestClient[web.Request, web.Application],
) -> None:
    frames = await open_stream(http, reflector, "?namespace=team-b")
    api.add_pod(make_pod("a", "team-a", node=NODE))
    api.add_pod(make_pod("b", "team-b", node=NODE))
    (event,) = await frames.take(1)
    assert (event["namespace"], event["podName"]) == ("team-b", "b")
    bad = await http.get("/v1/events?namespace=Not_A_Namespace")
    assert bad.status == 400
    assert "namespace" in (await bad.json())["error"]


async def test_initial_replays_running_containers(
    api: FakeApiServer,
    reflector: PodReflector,
    http: TestClient[web.Request, web.Application],
) -> None:
    raw = api.add_pod(make_pod("early", node=NODE, containers=["a", "b"]))
    await wait_for_value(lambda: len(reflector.pods()) == 1, "pod in cache")
    frames = await open_stream(http, reflector, "?initial=true")
    events = await frames.take(2)
    expected = {s["containerID"] for s in raw["status"]["containerStatuses"]}
    assert {e["containerID"] for e in events} == expected
    assert {e["type"] for e in events} == {"start"}


async def test_heartbeat_and_disconnect_unsubscribes(
    reflector: PodReflector, http: TestClient[web.Request, web.Application]
) -> None:
    frames = await open_stream(http, reflector)
    while "ping" not in frames.comments:
        line = await asyncio.wait_for(frames.response.content.readline(), timeout=15)
        if line.startswith(b":"):
            frames.comments.append(line[1:].decode().strip())
    frames.response.close()
    await wait_for_value(lambda: reflector.subscribers == 0, "unsubscribe after disconnect")


async def test_shutdown_ends_open_streams(api: FakeApiServer, reflector: PodReflector) -> None:
    app = web.Application()
    add_routes(app, reflector)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{port}/v1/events")
        await wait_for_value(lambda: reflector.subscribers == 1, "subscription")
        await runner.shutdown()
        frames = Frames(response)
        assert await frames.next() is None  # clean end of stream, not an error
        assert reflector.subscribers == 0
    await runner.cleanup()


def test_restart_diff_stops_the_old_container_and_starts_the_new() -> None:
    app = FakeContainer("app")
    before = pod_meta(make_pod("p", uid="u1", containers=[app]))
    old_id = app.container_id
    app.container_id = None
    after = pod_meta(make_pod("p", uid="u1", containers=[app]))
    events = diff(before, after)
    assert [(e.type, e.container_id.split("://")[1]) for e in events] == [
        ("stop", old_id),
        ("start", app.container_id),
    ]
    assert diff(after, after) == []


async def test_a_consumer_that_falls_behind_is_resynced_from_the_cache(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """A relist hands a stream many pod updates at once; with a small queue most are
    dropped. The stream says so (``resync``) and still delivers every container's start,
    rebuilt from the reflector's cache."""
    client = KubeClient(load_configuration(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))
    reflector = PodReflector(
        client, NODE, watch_timeout_seconds=1, read_timeout_seconds=3, queue_size=2
    )
    await reflector.start()
    app = web.Application()
    add_routes(app, reflector, heartbeat_seconds=0.3)
    try:
        await wait_for_value(lambda: reflector.synced, "reflector sync")
        async with TestClient(TestServer(app)) as http:
            frames = await open_stream(http, reflector)
            await api.pause()
            await wait_for_value(lambda: reflector.state == "disconnected", "disconnect")
            raws = [api.add_pod(make_pod(f"burst-{i}", node=NODE)) for i in range(6)]
            api.compact()
            await api.resume()
            got = await frames.take(7)
            assert got[0]["type"] == "resync"
            expected = {r["status"]["containerStatuses"][0]["containerID"] for r in raws}
            assert {e["containerID"] for e in got[1:]} == expected
            assert {e["type"] for e in got[1:]} == {"start"}
            assert reflector.dropped_events >= 4
    finally:
        await reflector.stop()
        await client.aclose()


async def test_streams_beyond_the_cap_are_refused_until_one_closes(
    reflector: PodReflector,
) -> None:
    app = web.Application()
    add_routes(app, reflector, heartbeat_seconds=0.3, max_streams=1)
    async with TestClient(TestServer(app)) as http:
        first = await open_stream(http, reflector)
        refused = await http.get("/v1/events")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "10"
        assert "too many open event streams" in (await refused.json())["error"]
        first.response.close()
        await wait_for_value(lambda: reflector.subscribers == 0, "first stream closed")
        again = await open_stream(http, reflector)
        again.response.close()
