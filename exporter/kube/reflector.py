"""The node-scoped pod reflector: LIST, then WATCH from its resourceVersion, forever.

One list+watch of ``spec.nodeName=<node>`` keeps an in-memory copy of this node's pods
so that every container seen in the kernel can be named without an API call. The
rules are the API server's (docs/kubernetes.md): resume watches from
the last resourceVersion seen (bookmarks included), and on 410 Gone re-list and diff
against the cache, so pods deleted while we were away are reported as deleted instead
of living on forever. A client-side read timeout catches half-open connections the
server-side ``timeoutSeconds`` cannot.

Pods deleted from the API stay findable by UID (``get_by_uid``) for
``deleted_retention_seconds`` (bounded by ``max_deleted``): a pod that ran between two
polls is billed from the extractor's tombstone after the API has forgotten it, and its
bill must still name its subject. Everything else (``pods()``, container lookups, events)
sees live pods only.

The official client is synchronous, so list and watch run in one dedicated thread; the
cache is read under a lock, and events are handed to asyncio subscribers on the loop
with ``call_soon_threadsafe``.

Requests go through the official ``ApiClient`` (its credentials, TLS and token refresh)
but not through the generated ``CoreV1Api``: importing that class alone costs ~21 MiB of
resident memory, and the reflector parses the JSON itself into ``PodMeta``
(``exporter.kube.config.open_get``, ``exporter.kube.pods``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from exporter.kube.client import ApiError, KubeClient, Query, describe_error
from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.kube.pods import PodConversionError, pod_meta, split_container_id

log = logging.getLogger(__name__)

PODS_PATH = "/api/v1/pods"
QUIET_WATCH_SECONDS = 1.0
"""A watch that stayed open this long before a clean end was a healthy, quiet one."""
ReflectorState = Literal["starting", "synced", "relisting", "disconnected"]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class PodEvent(BaseModel):
    """A change to this node's pods, as the reflector saw it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    pod: PodMeta


class _Expired(Exception):
    """The watch's resourceVersion is gone from the server's history (410)."""


class _WatchFailed(Exception):
    """The server ended the watch with an ERROR event other than 410."""


class _Cache:
    """Pods by UID with the two lookups the exporter needs, and recently deleted pods by
    UID (in the order they were deleted)."""

    def __init__(self, retention_seconds: float, max_deleted: int) -> None:
        self.pods: dict[str, PodMeta] = {}
        self.by_cgroup_uid: dict[str, str] = {}
        self.by_container_id: dict[str, str] = {}
        self.retention_seconds = retention_seconds
        self.max_deleted = max_deleted
        self.deleted: dict[str, tuple[float, PodMeta]] = {}
        self.deleted_by_cgroup_uid: dict[str, str] = {}

    def put(self, pod: PodMeta) -> PodMeta | None:
        self._undelete(pod.uid)
        old = self.remove(pod.uid)
        self.pods[pod.uid] = pod
        self.by_cgroup_uid[pod.cgroup_uid] = pod.uid
        for container in pod.containers:
            if container.container_id:
                self.by_container_id[container.container_id] = pod.uid
        return old

    def remove(self, uid: str) -> PodMeta | None:
        old = self.pods.pop(uid, None)
        if old is not None:
            if self.by_cgroup_uid.get(old.cgroup_uid) == uid:
                del self.by_cgroup_uid[old.cgroup_uid]
            for container in old.containers:
                if (
                    container.container_id
                    and self.by_container_id.get(container.container_id) == uid
                ):
                    del self.by_container_id[container.container_id]
        return old

    def delete(self, uid: str, now: float, last: PodMeta | None = None) -> PodMeta | None:
        """Remove a live pod, keeping it (as ``last`` seen, if given) among the recently
        deleted."""
        old = self.remove(uid)
        if old is not None:
            kept = last or old
            self.deleted[uid] = (now, kept)
            self.deleted_by_cgroup_uid[kept.cgroup_uid] = uid
            self.expire(now)
        return old

    def recently_deleted(self, uid: str, now: float) -> PodMeta | None:
        """By metadata.uid or cgroup UID, among pods deleted within the retention."""
        self.expire(now)
        entry = self.deleted.get(uid)
        if entry is None and (real := self.deleted_by_cgroup_uid.get(uid)) is not None:
            entry = self.deleted.get(real)
        return entry[1] if entry is not None else None

    def expire(self, now: float) -> None:
        cutoff = now - self.retention_seconds
        while self.deleted:
            uid, (at, _) = next(iter(self.deleted.items()))
            if at >= cutoff and len(self.deleted) <= self.max_deleted:
                return
            self._undelete(uid)

    def _undelete(self, uid: str) -> None:
        entry = self.deleted.pop(uid, None)
        if entry is not None and self.deleted_by_cgroup_uid.get(entry[1].cgroup_uid) == uid:
            del self.deleted_by_cgroup_uid[entry[1].cgroup_uid]


class PodEventFanout:
    """Pod events fanned out to subscribers' bounded queues; a full queue drops its
    oldest event and remembers it lost some (the subscriber then resyncs from a list).
    The reflector and the snapshot-fed source (exporter/feeds/runtime.py) both publish
    through it, so every event stream consumer sees one behaviour."""

    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subscribers: list[asyncio.Queue[PodEvent]] = []
        self._overflowed: set[int] = set()
        self.dropped_events = 0

    def subscribe(self) -> asyncio.Queue[PodEvent]:
        """A bounded queue of future events; when full the oldest event is dropped."""
        queue: asyncio.Queue[PodEvent] = asyncio.Queue(maxsize=self._queue_size)
        self._subscribers.append(queue)
        return queue

    @property
    def subscribers(self) -> int:
        """How many queues are subscribed (each open event stream holds one)."""
        return len(self._subscribers)

    def unsubscribe(self, queue: asyncio.Queue[PodEvent]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)
        self._overflowed.discard(id(queue))

    def overflowed(self, queue: asyncio.Queue[PodEvent]) -> bool:
        """Whether ``queue`` lost events since the last call (then: resync from ``pods()``)."""
        if id(queue) in self._overflowed:
            self._overflowed.discard(id(queue))
            return True
        return False

    def publish(self, events: list[PodEvent]) -> None:
        """Fan out, dropping the oldest event for slow consumers."""
        for queue in list(self._subscribers):
            for event in events:
                if queue.full():
                    queue.get_nowait()
                    self.dropped_events += 1
                    self._overflowed.add(id(queue))
                queue.put_nowait(event)


class PodReflector(PodEventFanout):
    """This node's pods, kept current by list+watch, readable from asyncio code."""

    def __init__(
        self,
        client: KubeClient,
        node_name: str,
        *,
        watch_timeout_seconds: int = 300,
        read_timeout_seconds: float = 330.0,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        queue_size: int = 1024,
        deleted_retention_seconds: float = 600.0,
        max_deleted: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not node_name:
            raise ValueError("node_name is required: the reflector only watches one node")
        self._api = client
        self._field_selector = f"spec.nodeName={node_name}"
        self._watch_timeout = watch_timeout_seconds
        self._read_timeout = read_timeout_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        super().__init__(queue_size)
        self._cache = _Cache(deleted_retention_seconds, max_deleted)
        self._clock = clock
        self._resource_version = ""
        self._state: ReflectorState = "starting"
        self._last_error: str | None = None
        self._synced = False
        self._watch_served = False
        """The last watch delivered (an event, a bookmark, or a quiet stretch) before it
        ended: a cut after that is a new failure, not another one in a row."""
        self._task: asyncio.Task[None] | None = None
        self.conversion_errors = 0
        self.generation = 0

    # -- asyncio-facing API

    async def start(self) -> None:
        """Begin list+watch in the background; returns at once (see ``state``)."""
        if self._task is not None:
            raise RuntimeError("PodReflector already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pod-reflector")

    async def stop(self) -> None:
        """End the watch, interrupting a read that is waiting for the next event."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def state(self) -> ReflectorState:
        return self._state

    @property
    def last_error(self) -> str | None:
        """The error behind the current "disconnected" state; None once recovered."""
        return self._last_error

    @property
    def synced(self) -> bool:
        """True once a list has completed; the cache may be stale but is never empty-by-default."""
        return self._synced

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark)."""
        return self._resource_version

    def pods(self) -> list[PodMeta]:
        return list(self._cache.pods.values())

    def get_by_uid(self, uid: str) -> PodMeta | None:
        """By metadata.uid, or by the UID in the pod's cgroup path (static pods' hash);
        a pod deleted from the API within ``deleted_retention_seconds`` is still found."""
        pod = self._cache.pods.get(uid)
        if pod is None and (real := self._cache.by_cgroup_uid.get(uid)) is not None:
            pod = self._cache.pods.get(real)
        if pod is None:
            pod = self._cache.recently_deleted(uid, self._clock())
        return pod

    def get_by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerStatus] | None:
        """By bare container ID (a ``runtime://`` prefix is stripped)."""
        bare = split_container_id(container_id)[1] or ""
        uid = self._cache.by_container_id.get(bare)
        pod = self._cache.pods.get(uid) if uid is not None else None
        if pod is None:
            return None
        status = next(c for c in pod.containers if c.container_id == bare)
        return pod, status

    # -- list and watch

    async def _run(self) -> None:
        need_list = True
        failures = 0
        while True:
            just_listed = need_list
            self._watch_served = False
            try:
                if need_list:
                    await self._list()
                    need_list = False
                healthy = await self._watch()
                failures = 0 if healthy else failures + 1
            except _Expired:
                log.info("pod watch resourceVersion %s expired; re-listing", self._resource_version)
                self._state = "relisting"
                need_list = True
                if not just_listed:
                    continue
                failures += 1  # expired straight after a list: do not hammer the server
            except Exception as err:
                failures = 1 if self._watch_served else failures + 1
                if failures == 1 and self._state == "synced":
                    # Load balancers and API server restarts cut watches routinely: resume
                    # at once, and only call the API unreachable if that fails too, so a
                    # routine cut never flips every response to runtime names.
                    log.info("pod watch interrupted (%s); resuming", describe_error(err))
                    continue
                self._state = "disconnected"
                self._last_error = describe_error(err)
                log.warning("pod list/watch failed: %s", self._last_error)
            if failures:
                await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with jitter, so a fleet of nodes does not retry in step."""
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** min(failures - 1, 20))
        return random.uniform(ceiling / 2, ceiling)

    def _timeout(self) -> httpx.Timeout:
        """Connecting gives up within 10 s; a read within the client-side read timeout,
        which catches half-open connections the server-side timeout cannot."""
        return httpx.Timeout(self._read_timeout, connect=min(10.0, self._read_timeout))

    async def _list(self) -> None:
        """LIST and replace the cache, emitting the difference as events."""
        query: list[tuple[str, str | int | bool]] = [("fieldSelector", self._field_selector)]
        if not self._synced:
            query.append(("resourceVersion", "0"))  # served from the watch cache, not etcd
        body = await self._api.get_json(PODS_PATH, query, timeout=self._timeout())
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValueError("pod list response has no items list")
        fresh: dict[str, PodMeta] = {}
        for item in items:
            pod = self._convert(item)
            if pod is not None:
                fresh[pod.uid] = pod
        events: list[PodEvent] = []
        now = self._clock()
        for uid, gone in list(self._cache.pods.items()):
            if uid not in fresh:
                self._cache.delete(uid, now)
                events.append(PodEvent(type="DELETED", pod=gone))
        for pod in fresh.values():
            old = self._cache.put(pod)
            if old is None:
                events.append(PodEvent(type="ADDED", pod=pod))
            elif old.resource_version != pod.resource_version:
                events.append(PodEvent(type="MODIFIED", pod=pod))
        self._resource_version = str(body.get("metadata", {}).get("resourceVersion", ""))
        if events:
            self.generation += 1
        self._synced = True
        self._mark_healthy()
        self.publish(events)

    async def _watch(self) -> bool:
        """One WATCH from the last resourceVersion; True unless it ended at once, empty.

        A quiet watch that the server closes at ``timeoutSeconds`` is healthy; one that
        closes immediately without an event is counted as a failure (and backed off), so a
        misbehaving server is not hammered.
        """
        began = time.monotonic()
        query: Query = [
            ("fieldSelector", self._field_selector),
            ("watch", True),
            ("resourceVersion", self._resource_version),
            ("allowWatchBookmarks", True),
            ("timeoutSeconds", self._watch_timeout),
        ]
        received = False
        try:
            async with self._api.stream(PODS_PATH, query, timeout=self._timeout()) as response:
                self._mark_healthy()
                async for line in _lines(response):
                    self._handle(line)
                    received = True
        except ApiError as err:
            if err.status == 410:
                raise _Expired from err
            raise
        finally:
            self._watch_served = received or time.monotonic() - began >= QUIET_WATCH_SECONDS
        return self._watch_served

    def _handle(self, line: bytes) -> None:
        event = orjson.loads(line)
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired(obj.get("message"))
            raise _WatchFailed(f"watch ERROR {obj.get('code')}: {obj.get('message')}")
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            if rv:
                self._resource_version = rv
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise _WatchFailed(f"unknown watch event type {kind!r}")
        pod = self._convert(obj)
        if rv:
            self._resource_version = rv
        if kind == "DELETED":
            # a deletion is honoured even when the final object does not convert:
            # otherwise the pod would linger in the cache until the next relist
            uid = pod.uid if pod is not None else _uid_of(obj)
            gone = self._cache.delete(uid, self._clock(), pod) if uid else None
            if gone is None:
                return
            out = PodEvent(type="DELETED", pod=pod or gone)
        elif pod is None:
            return
        else:
            old = self._cache.put(pod)
            out = PodEvent(type="ADDED" if old is None else "MODIFIED", pod=pod)
        self.generation += 1
        self.publish([out])

    def _convert(self, obj: Any) -> PodMeta | None:
        """A pod the converter rejects is skipped and counted, never fatal."""
        try:
            return pod_meta(obj)
        except PodConversionError as err:
            self.conversion_errors += 1
            log.warning("skipping malformed pod object: %s", err)
            return None

    def _mark_healthy(self) -> None:
        self._state = "synced"
        self._last_error = None


def _uid_of(obj: Any) -> str | None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return uid if isinstance(uid, str) and uid else None


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """Newline-delimited watch events, reassembled across chunk boundaries."""
    pending = b""
    async for chunk in response.aiter_bytes():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line.strip()
    if pending.strip():
        yield pending.strip()
