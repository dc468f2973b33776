"""``GET /v1/cluster/events``: every node's container events, as one Server-Sent Event stream.

Why on the exporter (reached through its Service): a consumer that attributes usage
cluster-wide wants one stream, not one connection per node, and the exporter already
knows its peers and calls them over verified TLS with its own service account
(exporter/cluster/peers.py). This node's events come from its pod reflector, as on
``/v1/events``; every peer's from that peer's ``/v1/events``, streamed and forwarded
frame by frame. Ids are the nodes' own deterministic ``<containerID>/<type>``, so the
merged stream has the same ids, and a frame whose id was already sent (a peer's replay
after its stream was cut and reopened) is not sent twice. A peer's broken stream is
reopened with back-off; peers that join later are picked up at the next peer-list check.
``?initial=true`` replays every node's running containers first; ``?namespace=`` filters.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from typing import Any

import httpx
from aiohttp import web

from exporter.cluster.peers import Peer, PeerError, Peers
from exporter.feeds.lifecycle import ContainerEvent, diff, follow, running
from exporter.feeds.sse import SSE_HEADERS, PodEventSource, frame, stream_options
from exporter.kube.podmeta import PodMeta

log = logging.getLogger(__name__)

MAX_CLUSTER_STREAMS = 8
"""Open cluster streams at once: each holds one stream to every peer."""
REMEMBERED_IDS = 65536
PEER_CHECK_SECONDS = 30.0
HEARTBEAT_SECONDS = 15.0


class _Sent:
    """The ids already written, oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self._ids: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._size = size

    def first_time(self, event_id: bytes) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def _event_id(raw: bytes) -> bytes | None:
    for line in raw.split(b"\n"):
        if line.startswith(b"id: "):
            return line[4:].strip()
    return None


async def _local(
    source: PodEventSource, out: asyncio.Queue[bytes], namespace: str | None, replay: bool
) -> None:
    def wanted(event: ContainerEvent) -> bool:
        return namespace is None or event.namespace == namespace

    queue = source.subscribe()
    try:
        seen: dict[str, PodMeta] = {pod.uid: pod for pod in source.pods()}
        if replay:
            for pod in seen.values():
                for event in filter(wanted, running(pod)):
                    await out.put(frame(event))
        while True:
            pod_event = await queue.get()
            if source.overflowed(queue):
                while not queue.empty():
                    queue.get_nowait()
                current = {pod.uid: pod for pod in source.pods()}
                changes = [diff(seen.get(u), current.get(u)) for u in {**seen, **current}]
                seen = current
            else:
                changes = [follow(seen, pod_event.pod, pod_event.type == "DELETED")]
            for events in changes:
                for event in filter(wanted, events):
                    await out.put(frame(event))
    finally:
        source.unsubscribe(queue)


async def _peer(
    peers: Peers, peer: Peer, out: asyncio.Queue[bytes], params: dict[str, str]
) -> None:
    """Forward one peer's event frames, reopening its stream with back-off."""
    failures = 0
    while True:
        try:
            async with peers.stream(peer, "/v1/events", params, 4 * HEARTBEAT_SECONDS) as resp:
                failures = 0
                pending = b""
                async for chunk in resp.aiter_bytes():
                    pending += chunk
                    *frames, pending = pending.split(b"\n\n")
                    for raw in frames:
                        if raw.strip() and not raw.startswith(b":"):
                            await out.put(raw + b"\n\n")
        except (httpx.HTTPError, PeerError, OSError) as err:
            failures += 1
            if failures == 1:
                log.warning("event stream of peer %s broke: %s; reopening", peer.node, err)
        ceiling = min(30.0, 0.5 * 2 ** min(failures, 6))
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))


def add_routes(app: web.Application, source: PodEventSource, peers: Peers) -> None:
    streams: set[asyncio.Event] = set()

    async def end_streams(_: web.Application) -> None:
        for stop in streams:
            stop.set()

    async def handler(request: web.Request) -> web.StreamResponse:
        options = stream_options(request)
        if isinstance(options, web.Response):
            return options
        if len(streams) >= MAX_CLUSTER_STREAMS:
            return web.json_response(
                {"error": f"too many open cluster streams (at most {MAX_CLUSTER_STREAMS})"},
                status=503,
                headers={"Retry-After": "10"},
            )
        namespace, replay = options
        params = {"initial": "true" if replay else "false"}
        if namespace is not None:
            params["namespace"] = namespace
        response = web.StreamResponse(headers=SSE_HEADERS)
        stop = asyncio.Event()
        streams.add(stop)
        out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1024)
        tasks: dict[str, asyncio.Task[Any]] = {
            "": asyncio.create_task(_local(source, out, namespace, replay))
        }
        try:
            await response.prepare(request)
            await response.write(b": connected\n\n")
            await _pump(response, peers, out, tasks, params, stop)
            await response.write_eof()
        except ConnectionResetError:
            pass
        finally:
            streams.discard(stop)
            for task in tasks.values():
                task.cancel()
            for task in tasks.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return response

    app.on_shutdown.append(end_streams)
    app.router.add_get("/v1/cluster/events", handler)


async def _pump(
    response: web.StreamResponse,
    peers: Peers,
    out: asyncio.Queue[bytes],
    tasks: dict[str, asyncio.Task[Any]],
    params: dict[str, str],
    stop: asyncio.Event,
) -> None:
    sent = _Sent()
    loop = asyncio.get_running_loop()
    next_check = loop.time()
    while not stop.is_set():
        if loop.time() >= next_check:
            known = {f"{p.node}@{p.address}": p for p in await peers.directory.peers()}
            for key in set(tasks) - set(known) - {""}:
                tasks.pop(key).cancel()
            for key, peer in known.items():
                if key not in tasks:
                    tasks[key] = asyncio.create_task(_peer(peers, peer, out, params))
            next_check = loop.time() + PEER_CHECK_SECONDS
        got = asyncio.ensure_future(out.get())
        stopped = asyncio.ensure_future(stop.wait())
        wait = max(0.0, min(HEARTBEAT_SECONDS, next_check - loop.time()))
        done, _ = await asyncio.wait({got, stopped}, timeout=wait, return_when="FIRST_COMPLETED")
        stopped.cancel()
        if got not in done:
            got.cancel()
            if not stop.is_set():
                await response.write(b": ping\n\n")
            continue
        raw = got.result()
        event_id = _event_id(raw)
        if event_id is None or sent.first_time(event_id):
            await response.write(raw)
