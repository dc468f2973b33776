"""``/v1/events`` slots on the exporter as the wiring serves it: capped per client and in
all, and freed the moment a client goes, not at its stream's next heartbeat.

Clients are told apart by their address: the test binds its sockets to different
loopback addresses (127.0.0.1, 127.0.0.2, …), which Linux routes to ``lo`` alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from exporter.feeds.sse import HEARTBEAT_SECONDS as HEARTBEAT
from tests.support.apiserver import FakeApiServer
from tests.support.served import Served, extractor_standin, served, settings_with_api, socket_path

PER_CLIENT = 2
TOTAL = 3


@dataclass
class Stream:
    status: int
    body: bytes
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


async def _open(running: Served, client: str) -> Stream:
    reader, writer = await asyncio.open_connection(
        running.host, running.port, local_addr=(client, 0)
    )
    writer.write(b"GET /v1/events HTTP/1.1\r\nHost: exporter\r\n\r\n")
    async with asyncio.timeout(15):
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        body = b""
        if status != 200:
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        else:
            assert b"text/event-stream" in head
            assert await reader.readuntil(b": connected\n\n")
    return Stream(status, body, writer)


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[Served]:
    sock = socket_path("sse")
    async with FakeApiServer(bookmark_interval=0.5) as api, extractor_standin(sock):
        settings = settings_with_api(
            api,
            tmp_path,
            sock,
            max_event_streams=TOTAL,
            max_event_streams_per_client=PER_CLIENT,
        )
        async with served(settings) as running:
            yield running


async def test_one_client_cannot_take_every_stream(exporter: Served) -> None:
    streams: list[Stream] = []
    try:
        for _ in range(PER_CLIENT):
            streams.append(await _open(exporter, "127.0.0.1"))
        assert [s.status for s in streams] == [200] * PER_CLIENT
        greedy = await _open(exporter, "127.0.0.1")
        assert greedy.status == 503
        assert "from this client (at most 2)" in orjson.loads(greedy.body)["error"]
        other = await _open(exporter, "127.0.0.2")
        streams.append(other)
        assert other.status == 200
        # the global cap still holds for everyone
        third = await _open(exporter, "127.0.0.3")
        assert third.status == 503
        assert "(at most 3)" in orjson.loads(third.body)["error"]
    finally:
        for stream in streams:
            stream.close()


async def test_a_gone_clients_slot_is_free_before_any_heartbeat(exporter: Served) -> None:
    loop = asyncio.get_running_loop()
    streams = [await _open(exporter, "127.0.0.1") for _ in range(PER_CLIENT)]
    try:
        assert (await _open(exporter, "127.0.0.1")).status == 503
        started = loop.time()
        streams.pop().close()
        # well before the next heartbeat would have found the stream dead
        while loop.time() - started < HEARTBEAT / 3:
            again = await _open(exporter, "127.0.0.1")
            if again.status == 200:
                streams.append(again)
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the slot was still taken {HEARTBEAT / 3:g}s after its client left")
    finally:
        for stream in streams:
            stream.close()
