"""The telemd feed against a real redis-server, with pods the fake API server creates.

A real Redis client subscribes to ``galileo/events`` as telemd-kubernetes-adapter's
consumers do. The expected JSON of each line is computed here independently of the
exporter's encoder: Python's ``json`` with the struct order of the adapter's
``PodMessage`` (docs/telemd.md) and the escapes Go's ``encoding/json`` documents
(``<``, ``>``, ``&`` as ``\\u003c``…).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from exporter.feeds.gojson import Struct, marshal
from exporter.feeds.redis_feed import EVENTS_CHANNEL, RedisFeed
from exporter.kube.client import KubeClient, load_configuration
from exporter.kube.reflector import PodReflector
from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.support.redis import CuttableLink, RedisServer, skip_reason

NODE = "node-a"
LINE = re.compile(r"^(\d+\.\d{7}) pod/(create|running|pending|shutdown|delete) (\{.*\})$")


def expected_message(pod: dict[str, Any]) -> str:
    """The adapter's PodMessage for this Pod object, as Go's json.Marshal writes it."""
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    containers: dict[str, Any] = {}
    for st in status.get("containerStatuses", []):
        c = next(c for c in spec["containers"] if c["name"] == st["name"])
        resources = c.get("resources", {})
        containers[c["name"]] = {
            "id": st.get("containerID", ""),
            "name": st["name"],
            "image": c["image"],
            "port": c["ports"][0]["containerPort"] if c.get("ports") else -1,
            "resource_requests": {
                k: json.dumps(v) for k, v in sorted(resources.get("requests", {}).items())
            },
            "resource_limits": {
                k: json.dumps(v) for k, v in sorted(resources.get("limits", {}).items())
            },
        }
    message = {
        "podUid": meta["uid"],
        "containers": dict(sorted(containers.items())),
        "namespace": meta["namespace"],
        "hostIP": status.get("hostIP", ""),
        "name": meta["name"],
        "nodeName": spec.get("nodeName", ""),
        "podIP": status.get("podIP", ""),
        "qosClass": status.get("qosClass", ""),
        "startTime": status.get("startTime"),
        "labels": dict(sorted(meta["labels"].items())) if meta.get("labels") else None,
        "status": status.get("phase", ""),
    }
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def test_go_encoding_of_structs_maps_and_escapes() -> None:
    value = Struct((("z", {"b": 1, "a": "<x&y>"}), ("a", None), ("t", 'tab\tq"\u2028\x01')))
    assert marshal(value) == (
        '{"z":{"a":"\\u003cx\\u0026y\\u003e","b":1},"a":null,"t":"tab\\tq\\"\\u2028\\u0001"}'
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with RedisServer.start(tmp_path) as server:
        yield server


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.3) as server:
        yield server


@pytest.fixture
async def reflector(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[PodReflector]:
    client = KubeClient(load_configuration(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))
    r = PodReflector(client, NODE, watch_timeout_seconds=1, read_timeout_seconds=3)
    yield r
    await r.stop()
    await client.aclose()


class Subscriber:
    """A telemd consumer: subscribed to both channels, collecting what arrives."""

    def __init__(self, port: int) -> None:
        self.client = aioredis.Redis(port=port)
        self.pubsub = self.client.pubsub()
        self.messages: list[tuple[str, str]] = []

    async def __aenter__(self) -> Subscriber:
        await self.pubsub.subscribe("galileo/events", EVENTS_CHANNEL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()

    async def until(self, done: Callable[[list[tuple[str, str]]], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not done(self.messages):
            assert time.monotonic() < deadline, f"gave up waiting for {what}: {self.messages}"
            got = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if got is not None:
                self.messages.append((got["channel"].decode(), got["data"].decode()))

    def telemd(self) -> list[tuple[str, str, str]]:
        """(event, pod name, json) of every galileo/events line, checked for the format."""
        out = []
        for channel, data in self.messages:
            if channel != "galileo/events":
                continue
            match = LINE.match(data)
            assert match, data
            assert abs(float(match[1]) - time.time()) < 60
            out.append((match[2], json.loads(match[3])["name"], match[3]))
        return out

    def containers(self) -> list[dict[str, Any]]:
        return [json.loads(d) for c, d in self.messages if c == EVENTS_CHANNEL]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def feed_for(reflector: PodReflector, port: int, **kw: Any) -> RedisFeed:
    return RedisFeed(reflector, NODE, host="127.0.0.1", port=port, timeout_seconds=1, **kw)


def web_pod(name: str, **kw: Any) -> dict[str, Any]:
    pod = make_pod(
        name,
        "shop",
        node=NODE,
        containers=[
            FakeContainer("app", requests={"cpu": "250m", "memory": "64Mi"}, limits={"cpu": "1"}),
            FakeContainer("sidecar", image="docker.io/library/envoy:1.30"),
        ],
        labels={"app": "web", "note": "a&b"},
        start_time=datetime(2021, 8, 17, 18, 29, 58, tzinfo=UTC),
        **kw,
    )
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    return pod


async def test_pods_created_and_deleted_reach_a_subscriber_in_telemd_bytes(
    redis_server: RedisServer, api: FakeApiServer, reflector: PodReflector
) -> None:
    before = api.add_pod(web_pod("web-0"))  # exists before the exporter starts
    api.add_pod(make_pod("elsewhere", "shop", node="node-b"))  # another node's: not ours
    feed = feed_for(reflector, redis_server.port)
    async with Subscriber(redis_server.port) as sub:
        feed.start()
        await reflector.start()
        try:
            await sub.until(lambda m: len(m) >= 3, "web-0's create and its two starts")
            created = api.add_pod(web_pod("web-1", phase="Pending", pod_ip=None))
            await sub.until(lambda m: len(sub.telemd()) >= 2, "web-1's create")
            running = api.update_pod(web_pod("web-1", uid=created["metadata"]["uid"]))
            await sub.until(lambda m: len(sub.telemd()) >= 3, "web-1 running")
            shutting = api.pod("shop", "web-1")
            shutting["metadata"]["deletionTimestamp"] = shutting["status"]["startTime"]
            shutting = api.update_pod(shutting)
            await sub.until(lambda m: len(sub.telemd()) >= 4, "web-1 shutting down")
            api.delete_pod("shop", "web-1")
            await sub.until(lambda m: len(sub.telemd()) >= 5, "web-1's delete")
            deadline = time.monotonic() + 10
            while feed.published["galileo/events"] < 5:  # counted once Redis has confirmed
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        finally:
            await feed.stop()

    lines = sub.telemd()
    assert [(e, n) for e, n, _ in lines] == [
        ("create", "web-0"),
        ("create", "web-1"),
        ("running", "web-1"),
        ("shutdown", "web-1"),
        ("delete", "web-1"),
    ]
    assert lines[0][2] == expected_message(before)
    assert lines[1][2] == expected_message(created)
    assert lines[2][2] == expected_message(running)
    assert lines[3][2] == expected_message(shutting)
    assert '"resource_requests":{"cpu":"\\"250m\\"","memory":"\\"64Mi\\""}' in lines[0][2]
    assert '"note":"a\\u0026b"' in lines[0][2] and '"port":8080' in lines[0][2]

    starts = [(e["type"], e["podName"], e["containerName"]) for e in sub.containers()]
    assert starts[:2] == [("start", "web-0", "app"), ("start", "web-0", "sidecar")]
    assert ("stop", "web-1", "app") in starts and ("start", "web-1", "app") in starts
    assert all(e["id"] == f"{e['containerID']}/{e['type']}" for e in sub.containers())
    assert feed.published["galileo/events"] == 5 and feed.lost == 0


async def test_a_late_consumer_reads_the_current_set(
    redis_server: RedisServer, api: FakeApiServer, reflector: PodReflector
) -> None:
    pods = [api.add_pod(web_pod(f"web-{i}")) for i in range(3)]
    feed = feed_for(reflector, redis_server.port)
    feed.start()
    await reflector.start()
    reader = aioredis.Redis(port=redis_server.port)
    try:
        deadline = time.monotonic() + 20
        while await reader.hlen(feed.pods_key) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        api.delete_pod("shop", "web-1")
        while await reader.hlen(feed.pods_key) != 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        current = await reader.hgetall(feed.pods_key)
        assert {_text(k): _text(v) for k, v in current.items()} == {
            p["metadata"]["uid"]: expected_message(p) for p in (pods[0], pods[2])
        }
        running = await reader.hgetall(feed.containers_key)
        assert {json.loads(v)["podName"] for v in running.values()} == {"web-0", "web-2"}
        assert len(running) == 4
        assert 0 < await reader.ttl(feed.pods_key) <= 180
    finally:
        await feed.stop()
        await reader.aclose()


async def test_redis_restart_and_network_cut_replay_what_was_queued(
    redis_server: RedisServer, api: FakeApiServer, reflector: PodReflector
) -> None:
    async with CuttableLink(redis_server.port) as link:
        feed = feed_for(reflector, link.port)
        feed.start()
        await reflector.start()
        try:
            async with Subscriber(redis_server.port) as sub:
                api.add_pod(web_pod("web-0"))
                await sub.until(lambda m: len(sub.telemd()) == 1, "web-0 while connected")

                # a network cut: the subscriber stays connected, the feed cannot reach Redis
                link.cut()
                api.add_pod(web_pod("web-1"))
                deadline = time.monotonic() + 20
                while feed.connected or feed.backlog < 3:
                    assert time.monotonic() < deadline, (feed.connected, feed.backlog)
                    await asyncio.sleep(0.02)
                assert [n for _, n, _ in sub.telemd()] == ["web-0"]
                link.restore()
                await sub.until(lambda m: len(sub.telemd()) == 2, "web-1 after the cut")
                assert feed.reconnects >= 1
                # everything queued is delivered and acknowledged before the next cut: a
                # message Redis published whose reply the cut lost is sent again (at least
                # once), which would show here as a second web-1
                await sub.until(
                    lambda m: not feed.backlog and sum(feed.published.values()) == len(m),
                    "the queue drained and every publish acknowledged",
                )

            # a Redis restart while the feed is cut off: pods created meanwhile arrive once
            # the new server is up and the link is back
            link.cut()
            api.add_pod(web_pod("web-2"))
            api.delete_pod("shop", "web-0")
            redis_server.restart()
            async with Subscriber(redis_server.port) as sub:
                link.restore()
                await sub.until(lambda m: len(sub.telemd()) == 2, "the queued create and delete")
                assert [(e, n) for e, n, _ in sub.telemd()] == [
                    ("create", "web-2"),
                    ("delete", "web-0"),
                ]
                reader = aioredis.Redis(port=redis_server.port)
                try:
                    # the fresh server knows the current set again
                    names = {json.loads(v)["name"] for v in (await reader.hvals(feed.pods_key))}
                    assert names == {"web-1", "web-2"}
                finally:
                    await reader.aclose()
            assert feed.lost == 0
        finally:
            await feed.stop()


async def test_what_overflows_the_backlog_is_counted_lost_and_nothing_blocks(
    redis_server: RedisServer, api: FakeApiServer, reflector: PodReflector
) -> None:
    async with CuttableLink(redis_server.port) as link:
        link.hang()  # accepts, never answers: only the feed's timeouts notice
        feed = feed_for(reflector, link.port, backlog=4)
        feed.start()
        await reflector.start()
        try:
            for i in range(3):  # each pod: one telemd line and two container starts
                api.add_pod(web_pod(f"web-{i}"))
            deadline = time.monotonic() + 20
            while feed.lost < 5:
                assert time.monotonic() < deadline, (feed.lost, feed.backlog)
                await asyncio.sleep(0.02)
            assert (feed.lost, feed.backlog) == (5, 4)
            assert not feed.connected
            async with Subscriber(redis_server.port) as sub:
                link.restore()
                await sub.until(lambda m: len(m) == 4, "the four newest messages")
                assert [n for _, n, _ in sub.telemd()] == ["web-2"]
        finally:
            await feed.stop()
