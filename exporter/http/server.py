"""The listening side of the exporter: slow, idle and surplus connections cut, and requests
aiohttp refuses before any handler (a bad request line, a bad header) answered in JSON.

Why: every open connection costs a descriptor, memory and a task, and the exporter
listens on the pod network. So a client may not hold connections for free: a request's
headers must be complete within ``header_timeout_seconds`` of the connection (or of the
first byte after the previous request), a TLS handshake too; a keep-alive connection
with nothing under way is closed after ``idle_timeout_seconds``; and a client (one
remote address) holds at most ``max_connections_per_client`` connections, the next
one gets a 503 and is closed (a connection counts once its TLS handshake is done; until
then the handshake timeout bounds it). Requests aiohttp's parser rejects get a 4xx JSON error
like every other refusal, and are logged at WARNING without a traceback, at most once
per client per minute, so a scanner cannot flood the log.

``GuardedSite`` is what the wiring listens with instead of aiohttp's ``TCPSite``; its
connections are aiohttp's own ``RequestHandler`` with those checks added, so request
parsing and the application are untouched.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from exporter.http.errors import status_response

log = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS = 60.0
LOG_MAX_CLIENTS = 4096


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take and how many connections it may hold."""

    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 120.0
    max_connections_per_client: int = 64


class ClientLog:
    """Warnings about one client at most once per ``interval`` seconds; the next one says
    how many were held back. Clients are remembered in a bounded LRU."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = LOG_INTERVAL_SECONDS,
        max_clients: int = LOG_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._max = max_clients
        self._clock = clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def warning(self, client: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(client)
        if last is not None and now - last[0] < self._interval:
            self._last[client] = (last[0], last[1] + 1)
            return
        held = f" ({last[1]} more from this client held back)" if last and last[1] else ""
        self._last[client] = (now, 0)
        self._last.move_to_end(client)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        self._logger.warning("%s: %s%s", client, message, held)


def _busy_response(limit: int) -> bytes:
    body = orjson.dumps(
        {"error": f"too many connections from this client (at most {limit}); retry later"}
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Guard:
    """What every connection of one site shares: the limits, open connections per
    remote address, the log, and the application's handler with refusals made JSON."""

    def __init__(
        self, limits: ConnectionLimits, client_log: ClientLog, handler: _AppHandler
    ) -> None:
        self.limits = limits
        self.log = client_log
        self.open: dict[str, int] = {}
        self.busy = _busy_response(limits.max_connections_per_client)
        self.handler = _json_refusals(handler)

    def admit(self, client: str) -> bool:
        count = self.open.get(client, 0)
        if count >= self.limits.max_connections_per_client:
            self.log.warning(client, f"refused a connection beyond {count} open ones")
            return False
        self.open[client] = count + 1
        return True

    def release(self, client: str) -> None:
        count = self.open.pop(client, 1) - 1
        if count > 0:
            self.open[client] = count


_AppHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _json_refusals(handler: _AppHandler) -> _AppHandler:
    """The application's handler with any 4xx that escapes it answered as JSON: aiohttp
    refuses some requests before the first middleware runs (an ``Expect`` other than
    ``100-continue`` gets its text/plain 417), out of reach of exporter/http/app.py's
    ``json_errors``."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return status_response(e.status, e.text or e.reason)

    return handle


def _client_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "unknown")


class _GuardedHandler(web.RequestHandler):
    """aiohttp's connection protocol, timing each request's headers and counting the
    connection against its client."""

    __slots__ = ("_client", "_guard", "_header_timer")

    def __init__(self, manager: web.Server, guard: _Guard, **kwargs: Any) -> None:
        # no access log (aiohttp's takes None for that, though its annotation says Logger)
        kwargs.setdefault("access_log", None)
        super().__init__(manager, keepalive_timeout=guard.limits.idle_timeout_seconds, **kwargs)
        self._request_handler = guard.handler
        self._guard = guard
        self._client: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = _client_of(transport)
        if not self._guard.admit(client):
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(self._guard.busy)
            transport.close()
            return
        self._client = client
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._client is None:
            return
        if self._header_timer is None and self._between_requests():
            self._arm()
        super().data_received(data)
        if self._messages:
            self._disarm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._client is None:
            return
        self._guard.release(self._client)
        self._client = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        """No request is queued or being handled: new bytes start the next one's headers."""
        return not (
            self._messages
            or self._request_in_progress
            or self._upgraded
            or self._payload_parser is not None
        )

    def _arm(self) -> None:
        self._header_timer = self._loop.call_later(
            self._guard.limits.header_timeout_seconds, self._headers_too_slow
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._client is None or not self._between_requests():
            return
        timeout = self._guard.limits.header_timeout_seconds
        self._guard.log.warning(self._client, f"no complete request within {timeout:g}s")
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp refused before any handler, as JSON; 5xx (a bug) keep
        aiohttp's logging with the traceback."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        text = message or (str(exc) if exc else "") or "malformed request"
        self._guard.log.warning(
            request.remote or "unknown", f"malformed request refused ({status}): {text!r}"
        )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed")
        response = status_response(status, f"malformed request: {text}")
        response.force_close()
        return response


class GuardedSite(web.BaseSite):
    """A TCP listener (TLS when given a context) whose connections are guarded."""

    __slots__ = ("_client_log", "_host", "_limits", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None = None,
        client_log: ClientLog | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._limits = limits
        self._client_log = client_log or ClientLog(log)

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None  # BaseSite insists on a runner that was set up
        guard = _Guard(self._limits, self._client_log, manager.request_handler)
        loop = asyncio.get_running_loop()
        handshake_timeout = self._limits.header_timeout_seconds
        self._server = await loop.create_server(
            lambda: _GuardedHandler(manager, guard, loop=loop),
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
        )
