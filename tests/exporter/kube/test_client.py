"""``read_capped``: what peers and ``collect`` use to read other exporters' answers."""

from __future__ import annotations

import httpx
import pytest

from exporter.kube.client import ResponseTooLarge, read_capped


def _client(body: bytes) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(body))

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_body_up_to_the_limit_is_read_whole() -> None:
    async with _client(b"x" * 1000) as client, client.stream("GET", "http://peer/") as resp:
        assert await read_capped(resp, 1000) == b"x" * 1000


async def test_a_body_past_the_limit_is_refused() -> None:
    async with _client(b"x" * 1001) as client, client.stream("GET", "http://peer/") as resp:
        with pytest.raises(ResponseTooLarge, match="larger than 1000 bytes"):
            await read_capped(resp, 1000)
