"""The lifecycle feed over Redis: telemd's ``galileo/events`` and our container events.

Why Redis: telemd-kubernetes-adapter's consumers subscribe there, and should run
unchanged. Each exporter announces the pods of its own node (the adapter watched the
whole cluster from one place; every node publishing its share adds up to the same
stream) and, on a channel of its own, the richer container start/stop events of
``/v1/events`` (exporter/feeds/lifecycle.py).

Never in the way: events are queued by the pod reflector's subscription and sent by one
background task; Redis being slow, restarting or cut off only delays that task, never a
poll, a request or metering. Every command has a timeout; a lost connection is retried
with exponential back-off and jitter (0.5 s to 30 s).

What happens while Redis is away: pub/sub keeps nothing, so a message not sent is lost
to every subscriber — and a consumer keying usage by container ID cannot attribute a
container whose ``pod/create`` it never saw. Messages therefore wait in a bounded backlog
(``backlog`` messages; beyond it the oldest are dropped and counted as lost) and are
sent, oldest first with their original timestamps, once Redis is back. A message whose
send was cut mid-way may arrive twice; container event ids are deterministic.

The current set, for consumers that connect late: hashes ``<prefix>:pods:<node>`` (pod
UID → the telemd JSON of that pod) and ``<prefix>:containers:<node>`` (container ID →
its start event), updated in the same transaction as each publish, rewritten whole at
every (re)connection and every ``refresh_seconds``, and expiring after
``3 × refresh_seconds`` so a node that is gone leaves nothing stale. A consumer
subscribes first, then reads the hashes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exporter.feeds import telemd
from exporter.feeds.lifecycle import ContainerEvent, diff
from exporter.feeds.sse import PodEventSource
from exporter.kube.podmeta import PodMeta
from exporter.kube.reflector import PodEvent
from exporter.lifecycle import Background

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "runtime-insights/events"
KEY_PREFIX = "runtime-insights"
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Message:
    """One publish, and how it changes the current-set hashes (``value`` None: removed)."""

    seq: int
    channel: str
    payload: str | bytes
    key: str
    member: str
    value: str | bytes | None


def container_payload(event: ContainerEvent) -> bytes:
    """A container event as JSON: the ``data`` of /v1/events with its ``id``."""
    return orjson.dumps(
        {"id": event.event_id, **event.model_dump(by_alias=True, exclude_none=True)}
    )


@dataclass
class _Current:
    """What the hashes should hold now: pods and running containers of this node."""

    pods: dict[str, str] = field(default_factory=dict)
    containers: dict[str, bytes] = field(default_factory=dict)


class RedisFeed:
    """Publishes this node's pod and container lifecycle to Redis, in the background."""

    def __init__(
        self,
        source: PodEventSource,
        node: str,
        *,
        host: str,
        port: int,
        password: str | None = None,
        events_channel: str = EVENTS_CHANNEL,
        key_prefix: str = KEY_PREFIX,
        backlog: int = 10_000,
        timeout_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
    ) -> None:
        self._source = source
        self._events_channel = events_channel
        self.pods_key = f"{key_prefix}:pods:{node}"
        self.containers_key = f"{key_prefix}:containers:{node}"
        self._refresh = refresh_seconds
        self._redis = aioredis.Redis(
            host=host,
            port=port,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # this feed backs off itself, never inside a call
            retry_on_error=[],
            single_connection_client=True,
        )
        self._backlog: collections.deque[Message] = collections.deque()
        self._max_backlog = backlog
        self._pending = asyncio.Event()
        self._seq = 0
        self._synced_upto = 0
        """Messages up to this sequence number are already in the hashes (a resync)."""
        self._seen: dict[str, PodMeta] = {}
        self._current = _Current()
        self._queue: asyncio.Queue[PodEvent] | None = None
        self._collect = Background("redis-feed-collect", self._collect_loop)
        self._deliver = Background("redis-feed-deliver", self._deliver_loop)
        self.connected = False
        self.published: collections.Counter[str] = collections.Counter()
        self.lost = 0
        self.reconnects = 0
        self.last_error: str | None = None

    # -- lifecycle

    def start(self) -> None:
        """Subscribe before the pod reflector starts, so its first list is announced."""
        if self._queue is None:
            self._queue = self._source.subscribe()
            for pod in self._source.pods():
                self._change(None, pod)
        self._collect.start()
        self._deliver.start()

    async def stop(self) -> None:
        await self._collect.stop()
        await self._deliver.stop()
        if self._queue is not None:
            self._source.unsubscribe(self._queue)
            self._queue = None
        await self._redis.aclose()

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    # -- from pod changes to messages

    def _enqueue(
        self, channel: str, payload: str | bytes, key: str, member: str, value: str | bytes | None
    ) -> None:
        self._seq += 1
        if len(self._backlog) >= self._max_backlog:
            self._backlog.popleft()
            self.lost += 1
        self._backlog.append(Message(self._seq, channel, payload, key, member, value))
        self._pending.set()

    def _change(self, old: PodMeta | None, new: PodMeta | None) -> None:
        """Announce one pod's change on both channels and track the current set."""
        if new is None:
            if old is not None:
                self._seen.pop(old.uid, None)
        else:
            self._seen[new.uid] = new
        for event, pod in telemd.events_for(old, new):
            payload = telemd.line(event, pod)
            if event == "delete":
                self._current.pods.pop(pod.uid, None)
                self._enqueue(telemd.CHANNEL, payload, self.pods_key, pod.uid, None)
            else:
                message = telemd.pod_message(pod)
                self._current.pods[pod.uid] = message
                self._enqueue(telemd.CHANNEL, payload, self.pods_key, pod.uid, message)
        for container in diff(old, new):
            body = container_payload(container)
            if container.type == "start":
                self._current.containers[container.container_id] = body
                value: bytes | None = body
            else:
                self._current.containers.pop(container.container_id, None)
                value = None
            key = self.containers_key
            self._enqueue(self._events_channel, body, key, container.container_id, value)

    def _resync_from_cache(self) -> None:
        """After the reflector dropped updates for us: changes from what we announced to
        what the cache holds now (deletions and creations are rebuilt, transitions that
        happened in the gap are not)."""
        current = {pod.uid: pod for pod in self._source.pods()}
        for uid in {**self._seen, **current}:
            old, new = self._seen.get(uid), current.get(uid)
            if old is None or new is None or old.resource_version != new.resource_version:
                self._change(old, new)

    async def _collect_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            pod_event = await queue.get()
            if self._source.overflowed(queue):
                while not queue.empty():
                    queue.get_nowait()
                self._resync_from_cache()
                continue
            old = self._seen.get(pod_event.pod.uid)
            if pod_event.type == "DELETED":
                self._change(old, None)
            elif old is None or old.resource_version != pod_event.pod.resource_version:
                self._change(old, pod_event.pod)

    # -- delivery

    def _snapshot_current(self) -> tuple[dict[str, str], dict[str, bytes]]:
        return dict(self._current.pods), dict(self._current.containers)

    async def _rewrite_hashes(self) -> None:
        """Both hashes replaced whole, in one transaction, with their expiry."""
        pods, containers = self._snapshot_current()
        upto = self._seq
        ttl = max(1, round(3 * self._refresh))
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, mapping in ((self.pods_key, pods), (self.containers_key, containers)):
                pipe.delete(key)
                if mapping:
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.expire(key, ttl)
            await pipe.execute()
        self._synced_upto = upto

    async def _send(self, message: Message) -> None:
        if message.seq <= self._synced_upto:
            await self._redis.publish(message.channel, message.payload)
        else:
            async with self._redis.pipeline(transaction=True) as pipe:
                if message.value is None:
                    pipe.hdel(message.key, message.member)
                else:
                    pipe.hset(message.key, message.member, message.value)
                pipe.publish(message.channel, message.payload)
                await pipe.execute()
        self.published[message.channel] += 1

    async def _drain(self) -> None:
        """Send the backlog, oldest first, refreshing the hashes when due; returns when
        the connection fails (the exception propagates)."""
        next_refresh = time.monotonic() + self._refresh
        while True:
            while self._backlog:
                message = self._backlog.popleft()
                try:
                    await self._send(message)
                except BaseException:
                    # back at the front, unless newer messages filled the backlog meanwhile
                    if len(self._backlog) < self._max_backlog:
                        self._backlog.appendleft(message)
                    else:
                        self.lost += 1
                    raise
            self._pending.clear()
            wait = next_refresh - time.monotonic()
            if wait <= 0:
                await self._rewrite_hashes()
                next_refresh = time.monotonic() + self._refresh
                continue
            try:
                async with asyncio.timeout(wait):
                    await self._pending.wait()
            except TimeoutError:
                pass

    async def _deliver_loop(self) -> None:
        failures = 0
        while True:
            try:
                await self._redis.ping()
                await self._rewrite_hashes()
                if failures:
                    log.info("Redis is back; sending %d queued messages", len(self._backlog))
                self.connected, failures, self.last_error = True, 0, None
                await self._drain()
            except (RedisError, OSError) as err:
                if self.connected:
                    self.reconnects += 1
                self.connected = False
                failures += 1
                self.last_error = f"{type(err).__name__}: {err}"
                if failures == 1:
                    log.warning("Redis unavailable (%s); queueing messages", self.last_error)
                await asyncio.sleep(_backoff(failures))

    def collector(self) -> Collector:
        return _FeedCollector(self)


def _backoff(failures: int) -> float:
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_INITIAL_SECONDS * 2 ** min(failures - 1, 20))
    return random.uniform(ceiling / 2, ceiling)


class _FeedCollector(Collector):
    def __init__(self, feed: RedisFeed) -> None:
        self._feed = feed

    def collect(self) -> Iterator[Metric]:
        published = CounterMetricFamily(
            "runtime_insights_exporter_redis_published",
            "messages published to Redis, by channel",
            labels=["channel"],
        )
        for channel, count in sorted(self._feed.published.items()):
            published.add_metric([channel], count)
        yield published
        yield CounterMetricFamily(
            "runtime_insights_exporter_redis_lost",
            "messages dropped from the backlog while Redis was away (oldest first)",
            value=self._feed.lost,
        )
        yield CounterMetricFamily(
            "runtime_insights_exporter_redis_reconnects",
            "connections to Redis lost and made again",
            value=self._feed.reconnects,
        )
        yield GaugeMetricFamily(
            "runtime_insights_exporter_redis_connected",
            "1 while the feed is connected to Redis",
            value=1 if self._feed.connected else 0,
        )
        yield GaugeMetricFamily(
            "runtime_insights_exporter_redis_backlog",
            "messages waiting to be published",
            value=self._feed.backlog,
        )
