"""``GET /v1/events``: container start/stop events as Server-Sent Events.

A push feed lets a consumer attribute per-container usage the moment a container
starts or stops, instead of polling and missing short-lived containers. Each stream
subscribes to the pod reflector (or, without the API server, to the snapshots' pods:
exporter/feeds/runtime.py), remembers the pods it has seen, and turns every pod
update into container events (exporter.feeds.lifecycle). Idle streams get a comment
heartbeat so proxies keep them open and a client that vanished without closing is
noticed; all streams end cleanly when the application shuts down.

Streams are capped in all and per client (remote address), so one client cannot take
every slot; a stream's slot is freed the moment its handler ends, and the exporter's
server cancels the handler as soon as the client's connection closes
(exporter/wiring.py: ``handler_cancellation``), not at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson
from aiohttp import web

from exporter.feeds.lifecycle import ContainerEvent, diff, follow, running
from exporter.kube.podmeta import PodMeta
from exporter.kube.reflector import PodEvent

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_STREAMS = 64
"""Open streams at once: each holds a queue of up to 1024 pod updates and a task."""
MAX_STREAMS_PER_CLIENT = 8
"""Open streams of one client (remote address), so one client cannot take every slot."""
HEARTBEAT_SECONDS = 15.0


class PodEventSource(Protocol):
    """What the feed needs of its pods: the reflector (exporter.kube.reflector.PodReflector)
    or the snapshots' (exporter.feeds.runtime.RuntimePods)."""

    def pods(self) -> list[PodMeta]: ...

    def subscribe(self) -> asyncio.Queue[PodEvent]: ...

    def unsubscribe(self, queue: asyncio.Queue[PodEvent]) -> None: ...

    def overflowed(self, queue: asyncio.Queue[PodEvent]) -> bool: ...


class _Slots:
    """Open streams, all of them and per client; a slot is held from the check until the
    handler ends, whichever way it ends (its client gone included: the server cancels
    the handler of a closed connection, see exporter/http/server.py)."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.stops: set[asyncio.Event] = set()
        self.clients: dict[str, int] = {}

    def refusal(self, client: str) -> str | None:
        if len(self.stops) >= self.total:
            return f"too many open event streams (at most {self.total}); retry later"
        if self.clients.get(client, 0) >= self.per_client:
            return (
                f"too many open event streams from this client (at most {self.per_client}); "
                "retry later"
            )
        return None

    @contextlib.contextmanager
    def held(self, client: str, stop: asyncio.Event) -> Iterator[None]:
        self.stops.add(stop)
        self.clients[client] = self.clients.get(client, 0) + 1
        try:
            yield
        finally:
            self.stops.discard(stop)
            left = self.clients.pop(client) - 1
            if left:
                self.clients[client] = left


def add_routes(
    app: web.Application,
    reflector: PodEventSource,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    max_streams: int = MAX_STREAMS,
    max_streams_per_client: int = MAX_STREAMS_PER_CLIENT,
) -> None:
    """Serve ``GET /v1/events`` from this reflector; streams end on app shutdown."""
    slots = _Slots(max_streams, max_streams_per_client)

    async def end_streams(_: web.Application) -> None:
        for stop in slots.stops:
            stop.set()

    async def handler(request: web.Request) -> web.StreamResponse:
        client = request.remote or "unknown"
        refused = slots.refusal(client)
        if refused is not None:
            return web.json_response({"error": refused}, status=503, headers={"Retry-After": "10"})
        stop = asyncio.Event()
        with slots.held(client, stop):
            return await _stream(request, reflector, stop, heartbeat_seconds)

    app.on_shutdown.append(end_streams)
    app.router.add_get("/v1/events", handler)


def stream_options(request: web.Request) -> tuple[str | None, bool] | web.Response:
    """``namespace`` and ``initial`` of an event stream request, or the 400 to answer."""
    namespace = request.query.get("namespace")
    if namespace is not None and not _NAMESPACE.match(namespace):
        return web.json_response({"error": f"invalid namespace: {namespace!r}"}, status=400)
    initial = request.query.get("initial", "false").lower()
    if initial not in ("true", "false", "1", "0"):
        return web.json_response({"error": "initial must be true or false"}, status=400)
    return namespace, initial in ("true", "1")


SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def frame(event: ContainerEvent) -> bytes:
    """One Server-Sent Event: ``id`` (deterministic), ``event`` (its type), ``data``."""
    data = orjson.dumps(event.model_dump(by_alias=True, exclude_none=True))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event.event_id.encode(),
        event.type.encode(),
        data,
    )


async def _stream(
    request: web.Request, reflector: PodEventSource, stop: asyncio.Event, heartbeat: float
) -> web.StreamResponse:
    options = stream_options(request)
    if isinstance(options, web.Response):
        return options
    namespace, replay = options

    def wanted(event: ContainerEvent) -> bool:
        return namespace is None or event.namespace == namespace

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    queue = reflector.subscribe()
    try:
        await response.prepare(request)
        seen = {pod.uid: pod for pod in reflector.pods()}
        if replay:
            for pod in seen.values():
                for event in filter(wanted, running(pod)):
                    await response.write(frame(event))
        await response.write(b": connected\n\n")
        await _pump(response, reflector, queue, stop, seen, wanted, heartbeat)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing to end cleanly
    finally:
        reflector.unsubscribe(queue)
    return response


RESYNC_FRAME = (
    b"event: resync\ndata: "
    + orjson.dumps({"type": "resync", "reason": "events were dropped for this slow consumer"})
    + b"\n\n"
)


def _resync(seen: dict[str, PodMeta], reflector: PodEventSource) -> list[ContainerEvent]:
    """Events from what this stream last saw to the reflector's current pods (``seen`` is
    updated): after an overflow the queued pod updates are incomplete, the cache is not."""
    current = {pod.uid: pod for pod in reflector.pods()}
    events = [e for uid in {**seen, **current} for e in diff(seen.get(uid), current.get(uid))]
    seen.clear()
    seen.update(current)
    return events


async def _pump(
    response: web.StreamResponse,
    reflector: PodEventSource,
    queue: asyncio.Queue[PodEvent],
    stop: asyncio.Event,
    seen: dict[str, PodMeta],
    wanted: Callable[[ContainerEvent], bool],
    heartbeat: float,
) -> None:
    """Write events until shutdown; a heartbeat comment whenever nothing happened.

    A stream too slow for the pod churn loses queued updates: it then says so (a
    ``resync`` event) and rebuilds its events from the pod cache instead, so a container
    that started or stopped during the gap still gets its event.
    """
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    got: asyncio.Future[Any] | None = None
    try:
        while True:
            if got is None:
                got = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {got, stopped}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
            if stopped in done:
                return
            if got not in done:
                await response.write(b": ping\n\n")
                continue
            pod_event: PodEvent = got.result()
            got = None
            if reflector.overflowed(queue):
                while not queue.empty():
                    queue.get_nowait()
                await response.write(RESYNC_FRAME)
                for event in filter(wanted, _resync(seen, reflector)):
                    await response.write(frame(event))
                continue
            changes = follow(seen, pod_event.pod, pod_event.type == "DELETED")
            for event in filter(wanted, changes):
                await response.write(frame(event))
    finally:
        stopped.cancel()
        if got is not None:
            got.cancel()
