"""Slow and idle clients cut, open connections capped, in front of the socket's server.

Every connection costs the extractor a descriptor and some memory for as long as it
stays open, so a client may not hold one open for free: a request's headers must
arrive within ``header_timeout`` seconds of its first byte, a connection with no
request under way is closed after ``idle_timeout`` seconds (aiohttp's keep-alive
timeout, which also covers a connection that never sends anything), and beyond
``max_connections`` a new connection gets a 503 and is closed. The guard wraps the
aiohttp server's protocol factory and only watches the bytes for the blank line that
ends a header block: it never parses or changes what the server sees.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

HEADER_TIMEOUT = 5.0
IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 64
_END = b"\r\n\r\n"
_BUSY_BODY = json.dumps({"error": "too many connections"}).encode()
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_BUSY_BODY)
) + _BUSY_BODY


@dataclass(frozen=True)
class Limits:
    header_timeout: float = HEADER_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


@dataclass
class Counts:
    """What the guard did, for tests and the health endpoint."""

    open: int = 0
    refused: int = 0
    slow: int = 0


class _Guarded(asyncio.Protocol):
    """Passes everything to the server's protocol; closes on a header timeout."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None
        self.in_headers = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        counts = self.guard.counts
        if counts.open >= self.guard.limits.max_connections:
            counts.refused += 1
            self.transport.write(BUSY)
            self.transport.close()
            return
        counts.open += 1
        self.admitted = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self._watch(data)
        self.inner.data_received(data)

    def _watch(self, data: bytes) -> None:
        """Times each header block from its first byte to its blank line."""
        seen = self.tail + data
        start = 0
        while start < len(seen):
            if not self.in_headers:
                self.in_headers = True
                self._arm()
            end = seen.find(_END, start)
            if end < 0:
                break
            self.in_headers = False
            self._disarm()
            start = end + len(_END)
        self.tail = seen[-3:] if self.in_headers else b""

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.guard.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _too_slow(self) -> None:
        self.timer = None
        self.guard.counts.slow += 1
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.admitted:
            self.guard.counts.open -= 1
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()


class ConnectionGuard:
    """A protocol factory: ``ConnectionGuard(runner.server, limits)``."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: Limits) -> None:
        self.factory = factory
        self.limits = limits
        self.counts = Counts()

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self.factory(), self)
