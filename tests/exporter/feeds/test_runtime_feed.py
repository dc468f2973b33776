"""`GET /v1/events` without the API server: starts and stops follow the snapshots, with
the runtime's names (exporter/feeds/runtime.py), read by a real client over SSE."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.feeds.runtime import RuntimePods, pods_of
from exporter.feeds.sse import add_routes
from extractor.contract import Container, Pod, Snapshot, rfc3339
from tests.exporter.feeds.test_events_sse import Frames, wait_for_value
from tests.support.exporter_doubles import cid, pod_with, snapshot

WEB_UID = "33333333-3333-3333-3333-333333333333"
JOB_UID = "44444444-4444-4444-4444-444444444444"


def _web(taken_at: float, names: list[str]) -> tuple[Pod, list[Container]]:
    return pod_with("shop", "web-1", WEB_UID, [(n, None) for n in names], taken_at=taken_at)


def _job(taken_at: float) -> tuple[Pod, list[Container]]:
    return pod_with("batch", "report-x", JOB_UID, [("run", None)], taken_at=taken_at)


def test_pods_carry_runtime_names_and_skip_sandboxes() -> None:
    loose = Container(id=cid("loose"), runtime="docker", name="redis", started_at=5.0)
    snap = snapshot([_web(100.0, ["main", "proxy"])])
    snap.containers.append(loose)
    pods = pods_of(snap)
    web_pod = pods[WEB_UID]
    assert (web_pod.namespace, web_pod.name, web_pod.node) == ("shop", "web-1", "node-a")
    assert [c.name for c in web_pod.containers] == ["main", "proxy"]  # no sandbox
    assert {c.runtime for c in web_pod.containers} == {"containerd"}
    assert all(c.state == "running" for c in web_pod.containers)
    # a container outside Kubernetes is a pod of its own, named as /v1/containers names it
    alone = pods[loose.id]
    assert (alone.namespace, alone.name, alone.containers[0].name) == ("docker", "redis", "redis")


async def test_starts_and_stops_follow_the_snapshots() -> None:
    source = RuntimePods()
    first = snapshot([_web(100.0, ["main"])], taken_at=100.0)
    source.observe(first)
    app = web.Application()
    add_routes(app, source, heartbeat_seconds=0.3)
    async with TestClient(TestServer(app)) as http:
        response = await http.get("/v1/events?initial=true")
        assert response.status == 200
        await wait_for_value(lambda: len(source._subscribers) == 1, "subscription")
        frames = Frames(response)
        (initial,) = await frames.take(1)
        main = cid(f"{WEB_UID}-main")
        assert initial["type"] == "start"
        assert initial["containerID"] == f"containerd://{main}"
        assert (initial["podName"], initial["namespace"], initial["containerName"]) == (
            "web-1",
            "shop",
            "main",
        )
        # a sidecar starts and a job pod appears
        source.observe(snapshot([_web(110.0, ["main", "proxy"]), _job(110.0)], taken_at=110.0))
        got = await frames.take(2)
        assert {(e["type"], e["containerName"]) for e in got} == {
            ("start", "proxy"),
            ("start", "run"),
        }
        # the job ends (the exit watcher's tombstone dates it), the sidecar goes away
        ended = snapshot([_web(120.0, ["main"])], taken_at=120.0)
        ended.exited_pods.append(Pod(uid=JOB_UID, exited_at=118.5))
        source.observe(ended)
        got = await frames.take(2)
        stops = {e["containerName"]: e for e in got}
        assert {e["type"] for e in got} == {"stop"}
        assert stops["run"]["finishedAt"] == rfc3339(118.5)
        assert "finishedAt" not in stops["proxy"]  # no snapshot says when it ended
        # nothing changes: nothing is sent
        source.observe(snapshot([_web(130.0, ["main"])], taken_at=130.0))
        await asyncio.sleep(0.5)
        assert [p.name for p in source.pods()] == ["web-1"]
        response.close()


def test_a_consumer_that_falls_behind_is_told() -> None:
    source = RuntimePods(queue_size=2)
    queue = source.subscribe()
    for i in range(4):
        source.observe(Snapshot(node="n", taken_at=float(i), cgroup_version="v2"))
        source.observe(snapshot([_job(float(i))], taken_at=float(i)))
    assert queue.qsize() == 2 and source.overflowed(queue) and not source.overflowed(queue)
    source.unsubscribe(queue)
    assert source._subscribers == []
