"""Slow, idle and greedy clients are cut, over plain HTTP and TLS alike.

The exporter is built by the wiring (exporter/wiring.py) with short limits and driven
over raw sockets, so a test can hold a connection exactly as a slow client would:
headers trickled a byte at a time, a TLS handshake never started, a keep-alive
connection left idle, more connections than a client may hold, a body never finished.
Each wait for the server to cut a connection is bounded (``CUT_WITHIN``) so a server
that never cuts fails the test instead of hanging it; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from exporter.http.server import ClientLog
from tests.support.certs import make_ca, make_cert
from tests.support.parts import settings_for
from tests.support.served import Served, extractor_standin, served, socket_path

HEADER_TIMEOUT = 0.5
PER_CLIENT = 3
REQUEST_TIMEOUT = 1.0
CUT_WITHIN = 20.0
"""How long a test waits for the server to cut a connection before calling it a hang."""
IDLE_TIMEOUT = 3 * CUT_WITHIN
"""Longer than any wait: only the limit under test can cut a connection in time (asyncio's
own TLS handshake timeout, 60 s, is longer too)."""
SHORT_IDLE_TIMEOUT = 3.0

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n"


@dataclass
class Endpoint:
    served: Served
    client_tls: ssl.SSLContext | None

    async def connect(
        self, *, tls: bool = True
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection; with ``tls=False`` on a TLS port, a TCP one that never handshakes."""
        context = self.client_tls if tls else None
        return await asyncio.open_connection(
            self.served.host, self.served.port, ssl=context, server_hostname=None
        )


@asynccontextmanager
async def _running(
    tmp_path: Path, tls: bool, idle_timeout: float = IDLE_TIMEOUT
) -> AsyncIterator[Endpoint]:
    sock = socket_path("slow")
    certs: dict[str, str] = {}
    client_tls = None
    if tls:
        ca = make_ca(tmp_path, "ri-slow-ca")
        cert = make_cert(tmp_path, ca, "127.0.0.1")
        certs = {"tls_cert_file": str(cert.cert), "tls_key_file": str(cert.key)}
        client_tls = ssl.create_default_context(cafile=str(ca.cert))
    settings = settings_for(
        host="127.0.0.1",
        port=0,
        extractor_socket=sock,
        header_timeout_seconds=HEADER_TIMEOUT,
        idle_timeout_seconds=idle_timeout,
        max_connections_per_client=PER_CLIENT,
        request_timeout_seconds=REQUEST_TIMEOUT,
        **certs,
    )
    async with extractor_standin(sock), served(settings) as running:
        yield Endpoint(running, client_tls)


@pytest.fixture(params=["plain", "tls"])
async def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with _running(tmp_path, request.param == "tls") as running:
        yield running


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError, ssl.SSLError):
        async with asyncio.timeout(CUT_WITHIN):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    return b"".join(chunks)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response with a Content-Length body: (status, body)."""
    async with asyncio.timeout(CUT_WITHIN):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers["Content-Length"]))
    return int(lines[0].split()[1]), body


async def test_headers_trickled_past_the_timeout_are_cut(endpoint: Endpoint) -> None:
    reader, writer = await endpoint.connect()
    request = HEALTHZ
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        for byte in request[:-1]:  # never the final newline
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(HEADER_TIMEOUT / 10)

    trickling = asyncio.create_task(trickle())
    try:
        assert await _closed(reader) == b""  # closed without an answer
    finally:
        trickling.cancel()
        writer.close()
    # it was cut while the headers were still coming
    assert 0 < sent < len(request) - 1


async def test_a_connection_that_sends_nothing_is_cut(endpoint: Endpoint) -> None:
    reader, writer = await endpoint.connect()
    try:
        assert await _closed(reader) == b""
    finally:
        writer.close()


async def test_a_tls_handshake_never_started_is_cut(tmp_path: Path) -> None:
    async with _running(tmp_path, tls=True) as endpoint:
        reader, writer = await endpoint.connect(tls=False)
        try:
            assert await _closed(reader) == b""
        finally:
            writer.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_keep_alive_outlives_the_header_timeout_then_idles_out(
    tmp_path: Path, tls: bool
) -> None:
    async with _running(tmp_path, tls, idle_timeout=SHORT_IDLE_TIMEOUT) as endpoint:
        reader, writer = await endpoint.connect()
        try:
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200
            # waiting between requests is the idle timeout's business, not the header one's
            await asyncio.sleep(HEADER_TIMEOUT * 3)
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200
            assert await _closed(reader) == b""
        finally:
            writer.close()


async def test_a_client_holds_at_most_its_share_of_connections(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.http.server")
    held = []
    try:
        for _ in range(PER_CLIENT):
            reader, writer = await endpoint.connect()
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200  # now idle, still open
            held.append((reader, writer))
        reader, writer = await endpoint.connect()
        refused = await _closed(reader)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        error = orjson.loads(refused.partition(b"\r\n\r\n")[2])["error"]
        assert f"at most {PER_CLIENT}" in error
        # one held connection goes: a new one is admitted
        held.pop()[1].close()
        for _ in range(100):
            reader, writer = await endpoint.connect()
            writer.write(HEALTHZ)
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionResetError):
                status, _ = await _response(reader)
                if status == 200:
                    held.append((reader, writer))
                    break
            writer.close()
            await asyncio.sleep(0.05)
        else:
            pytest.fail("no connection was admitted after one closed")
    finally:
        for _, writer in held:
            writer.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "exporter.http.server"]
    assert len(warnings) == 1 and "refused a connection" in warnings[0], warnings


async def test_a_body_not_sent_in_time_is_408(endpoint: Endpoint) -> None:
    reader, writer = await endpoint.connect()
    try:
        writer.write(
            b"POST /gather_runtime_info HTTP/1.1\r\nHost: exporter\r\n"
            b'Content-Length: 100\r\n\r\n{"containerIds": '
        )
        status, body = await _response(reader)
        assert status == 408
        assert "not received" in orjson.loads(body)["error"]
    finally:
        writer.close()


def test_client_log_says_once_a_minute_per_client_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    client_log = ClientLog(logging.getLogger("ri-test-client-log"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ri-test-client-log"):
        for _ in range(5):
            client_log.warning("10.0.0.1", "bad request line")
        client_log.warning("10.0.0.2", "bad header")
        now[0] += 59
        client_log.warning("10.0.0.1", "bad request line")
        now[0] += 2
        client_log.warning("10.0.0.1", "bad request line")
    assert [r.getMessage() for r in caplog.records] == [
        "10.0.0.1: bad request line",
        "10.0.0.2: bad header",
        "10.0.0.1: bad request line (5 more from this client held back)",
    ]
    assert {r.levelno for r in caplog.records} == {logging.WARNING}
    assert not any(r.exc_info for r in caplog.records)
