"""Request limits: body size (declared and chunked), handler time, JSON 404/405."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from exporter.http.limits import limits_middleware

MAX = 1024


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"received": len(body)})


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="too late")


async def _own_timeout(_: web.Request) -> web.Response:
    raise TimeoutError("an upstream call of the handler timed out")


async def _events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(1.5)  # longer than the handler time limit below
    await response.write(b"data: still here\n\n")
    return response


async def _gather(request: web.Request) -> web.Response:
    """Stand-in for the insights-compatible endpoint, which answers 404 to other methods."""
    if request.method not in ("GET", "POST"):
        return web.Response(status=404, text="Method is not supported.")
    return web.json_response({})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[limits_middleware(MAX, 1.0)])
    app.router.add_post("/echo", _echo)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/own-timeout", _own_timeout)
    app.router.add_get("/v1/events", _events)
    app.router.add_route("*", "/gather_runtime_info", _gather)
    async with TestClient(TestServer(app)) as c:
        yield c


async def _json_error(response: ClientResponse, status: int) -> dict[str, object]:
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["code"] == status and body["kind"] == "Status" and body["error"]
    return dict(body)


async def test_body_at_the_limit_is_accepted(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/echo", data=b"x" * MAX)
    assert response.status == 200
    assert (await response.json()) == {"received": MAX}


async def test_declared_oversized_body_is_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/echo", data=b"x" * (MAX + 1))
    body = await _json_error(response, 413)
    assert str(MAX) in str(body["message"])


async def test_chunked_oversized_body_is_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * (MAX // 2)

    response = await client.post("/echo", data=chunks())
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    await _json_error(response, 413)


async def test_slow_handler_is_504(client: TestClient[web.Request, web.Application]) -> None:
    await _json_error(await client.get("/slow"), 504)


async def test_handlers_own_timeout_is_not_mistaken_for_the_limit(
    client: TestClient[web.Request, web.Application],
) -> None:
    # Re-raised untouched: aiohttp's own handling answers, not the limit's JSON message.
    response = await client.get("/own-timeout")
    assert response.content_type != "application/json"


async def test_event_stream_outlives_the_time_limit(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/v1/events")
    assert response.status == 200
    assert await response.read() == b"data: still here\n\n"


async def test_unknown_route_is_json_404(client: TestClient[web.Request, web.Application]) -> None:
    await _json_error(await client.get("/no/such/path"), 404)


async def test_wrong_method_is_json_405_with_allow(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/echo")
    await _json_error(response, 405)
    assert response.headers["Allow"] == "POST"


async def test_compat_endpoint_keeps_its_own_404(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.delete("/gather_runtime_info")
    assert response.status == 404
    assert response.content_type == "text/plain"
    assert await response.text() == "Method is not supported."
