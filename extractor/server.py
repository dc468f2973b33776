"""The extractor's unix-socket server: snapshots over HTTP, one pass in flight at most.

The socket is the only way out of the privileged extractor, so the server is small:
three read-only endpoints, no network listener. Each pass is recorded once
(``extractor/journal.py``), so a reader that already holds a snapshot gets only what
changed since (``CHANGES_PATH``) and the whole snapshot is encoded only when asked for.
A pass runs on demand, in a worker thread so the event loop keeps answering;
concurrent requests share the one pass in flight and a finished pass is reused for
``min_interval`` seconds, so any number of scrapers costs at most one pass per interval.
The socket is created 0660: only the owner and the group (the exporter's) may connect;
slow, idle and surplus connections are cut (``extractor/connguard.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from extractor.connguard import ConnectionGuard, Limits
from extractor.contract import (
    CHANGES_PATH,
    FRESH_FLOOR_SECONDS,
    HEALTH_PATH,
    MAX_AGE_PARAM,
    SINCE_PARAM,
    SNAPSHOT_PATH,
    Snapshot,
)
from extractor.journal import Journal, Served

MIN_INTERVAL = 1.0
SOCKET_MODE = 0o660
SHUTDOWN_TIMEOUT = 5.0
JSON = "application/json"
DEFAULT_LIMITS = Limits()


class PassFailed(Exception):
    """A pass raised; the message goes to the client instead of a traceback."""


class ServeError(Exception):
    """The server cannot start (socket path unusable, node unreadable)."""


class SnapshotSource:
    """Recorded snapshots, at most one pass in flight and one per ``min_interval``.

    The pass runs as its own task and requests await it shielded: a client that hangs
    up cannot cancel it, so no second pass ever starts while one still runs in a thread.
    A request with a ``max_age`` shorter than the reuse interval waits for a pass that
    started at most that long before it came (``extractor/contract/changes.py``): the one
    in flight if it is recent enough, else the next one, which every such request shares.
    """

    def __init__(
        self,
        take: Callable[[], Snapshot],
        *,
        min_interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
    ) -> None:
        self._take = take
        self._min_interval = min_interval
        self._clock = clock
        self.journal = journal or Journal()
        self._inflight: asyncio.Task[Served] | None = None
        self._inflight_at = -math.inf
        self._served: Served | None = None
        self._at = -math.inf
        self.passes = 0
        self.waiting = 0
        self.last_error: str | None = None

    async def served(self, max_age: float | None = None) -> Served:
        """The latest recorded snapshot, taking a pass when it is older than allowed."""
        limit = self._min_interval
        if max_age is not None:
            limit = min(limit, max(max_age, FRESH_FLOOR_SECONDS))
        asked = self._clock()
        while True:
            if self._served is not None and asked - self._at < limit:
                return self._served
            if self._inflight is None:
                self._inflight_at = self._clock()
                self._inflight = asyncio.create_task(self._pass(self._inflight_at))
                self._inflight.add_done_callback(_consume)
            started, task = self._inflight_at, self._inflight
            self.waiting += 1
            try:
                served = await asyncio.shield(task)
            finally:
                self.waiting -= 1
            if asked - started < limit:
                return served

    async def body(self) -> bytes:
        """The latest snapshot as JSON bytes, taking a pass only when the last one is stale."""
        served = await self.served()
        return await asyncio.to_thread(served.full)

    def _run(self) -> Served:
        return self.journal.record(self._take())

    async def _pass(self, started: float) -> Served:
        self.passes += 1
        try:
            served = await asyncio.to_thread(self._run)
        except Exception as e:  # one failed pass must not take the server down
            self.last_error = f"{type(e).__name__}: {e}"
            raise PassFailed(self.last_error) from None
        finally:
            self._inflight = None
        self._served, self._at, self.last_error = served, started, None
        return served


def _consume(task: asyncio.Task[Served]) -> None:
    """Marks a pass's failure as seen even when every waiting client hung up."""
    if not task.cancelled():
        task.exception()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and methods answer JSON like every other reply."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error(e.status, f"{e.reason}: {request.method} {request.path}")


def _max_age(request: web.Request) -> float | None:
    text = request.query.get(MAX_AGE_PARAM)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise web.HTTPBadRequest(reason=f"{MAX_AGE_PARAM}: not a number of seconds: {text!r}")
    return value


def make_app(source: SnapshotSource) -> web.Application:
    async def snapshot(request: web.Request) -> web.Response:
        try:
            served = await source.served(_max_age(request))
        except PassFailed as e:
            return _error(503, f"snapshot failed: {e}")
        etag = f'"{served.tag}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        body = await asyncio.to_thread(served.full)
        return web.Response(body=body, content_type=JSON, headers={"ETag": etag})

    async def changes(request: web.Request) -> web.Response:
        try:
            served = await source.served(_max_age(request))
        except PassFailed as e:
            return _error(503, f"snapshot failed: {e}")
        body = served.changes(request.query.get(SINCE_PARAM))
        return web.Response(body=body, content_type=JSON, headers={"ETag": f'"{served.tag}"'})

    async def health(_: web.Request) -> web.Response:
        state = {
            "status": "ok",
            "passes": source.passes,
            "last_error": source.last_error,
            "records_encoded": source.journal.encoded,
        }
        return web.json_response(state)

    app = web.Application(middlewares=[json_errors])
    app.router.add_get(SNAPSHOT_PATH, snapshot)
    app.router.add_get(CHANGES_PATH, changes)
    app.router.add_get(HEALTH_PATH, health)
    return app


def _clear_stale_socket(path: str) -> None:
    """Removes a socket left by a previous run; refuses to delete anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ServeError(f"socket path {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ServeError(f"socket path {path} exists and is not a socket; not replacing it")
    os.unlink(path)


@dataclass
class Listener:
    """What ``start`` set up: the application runner and the guarded unix server."""

    runner: web.AppRunner
    server: asyncio.AbstractServer
    guard: ConnectionGuard


async def start(
    socket_path: str, source: SnapshotSource, limits: Limits = DEFAULT_LIMITS
) -> Listener:
    """Binds the socket (mode 0660) and starts serving; ``stop`` undoes it."""
    directory = os.path.dirname(os.path.abspath(socket_path))
    if not os.path.isdir(directory):
        raise ServeError(f"socket directory {directory} does not exist")
    _clear_stale_socket(socket_path)
    runner = web.AppRunner(
        make_app(source),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=limits.idle_timeout,
    )
    await runner.setup()
    assert runner.server is not None
    guard = ConnectionGuard(runner.server, limits)
    old = os.umask(0o777 & ~SOCKET_MODE)
    try:
        server = await asyncio.get_running_loop().create_unix_server(guard, socket_path)
    except OSError as e:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {socket_path}: {e.strerror or e}") from None
    finally:
        os.umask(old)
    os.chmod(socket_path, SOCKET_MODE)
    return Listener(runner, server, guard)


async def stop(listener: Listener, socket_path: str) -> None:
    listener.server.close()
    await listener.runner.cleanup()
    with contextlib.suppress(OSError, ServeError):
        _clear_stale_socket(socket_path)


async def serve(socket_path: str, source: SnapshotSource, limits: Limits = DEFAULT_LIMITS) -> None:
    """Serves until SIGTERM or SIGINT, then closes connections and removes the socket.
    The handlers come first: once the socket exists, a SIGTERM must find them (a caller
    that waits for the socket and stops the extractor at once would otherwise kill it
    and leave the socket behind)."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    listener = await start(socket_path, source, limits)
    try:
        await done.wait()
    finally:
        await stop(listener, socket_path)
