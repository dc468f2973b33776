"""The probes with authentication on: ``/healthz`` and ``/livez`` answer anyone, and
``/readyz`` tells an anonymous caller its status and reason codes only, the details
(the API server's address, the node, raw error text) to a reader allowed ``/readyz``.

The exporter is built by the wiring against the fake API server; the API server is then
stopped, so the reflector's error names its address and readiness has details to hide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.apiserver import FakeApiServer
from tests.support.served import extractor_standin, served, settings_with_api, socket_path

READER = {"Authorization": "Bearer reader-token"}
STRANGER = {"Authorization": "Bearer stranger-token"}
FORGED = {"Authorization": "Bearer no-such-token"}


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.3) as server:
        server.add_token("reader-token", "reader")
        server.add_token("stranger-token", "stranger")
        server.allow("reader", "get", path="/readyz")
        yield server


@pytest.fixture
async def client(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    sock = socket_path("health")
    settings = settings_with_api(
        api,
        tmp_path,
        sock,
        poll_interval_seconds=0.2,
        auth_enabled=True,
        api_read_timeout_seconds=2,
        auth_review_timeout_seconds=1,
    )
    async with (
        extractor_standin(sock),
        served(settings) as running,
        httpx.AsyncClient(base_url=running.url, timeout=30) as http,
    ):
        yield http


async def _until(
    client: httpx.AsyncClient, headers: dict[str, str], wanted: Callable[[str], bool]
) -> dict[str, Any]:
    """The /readyz body, once its text is ``wanted``."""
    text = ""
    for _ in range(300):
        text = (await client.get("/readyz", headers=headers)).text
        if wanted(text):
            body: dict[str, Any] = orjson.loads(text)
            return body
        await asyncio.sleep(0.05)
    pytest.fail(f"/readyz never became what the test waits for: {text}")


async def test_liveness_answers_anyone(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/livez"):
        for headers in ({}, FORGED):
            resp = await client.get(path, headers=headers)
            assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


async def test_readiness_details_only_for_an_allowed_reader(
    client: httpx.AsyncClient, api: FakeApiServer
) -> None:
    detailed = await _until(client, READER, lambda text: '"status":"ok"' in text)
    assert detailed["metadataSource"] == "api" and detailed["ready"] is True
    for headers in ({}, STRANGER, FORGED):
        resp = await client.get("/readyz", headers=headers)
        assert (resp.status_code, resp.json()) == (200, {"status": "ok", "reasonCodes": []})

    await api.pause()
    host, port = api.url.removeprefix("http://").split(":")
    detailed = await _until(client, READER, lambda text: host in text and port in text)
    assert detailed["status"] == "degraded"
    assert detailed["reasonCodes"] == ["api-unreachable"]
    assert "API server unreachable" in detailed["reasons"][0]
    # the reader is still allowed (its decision outlives the outage, see
    # RUNTIME_INSIGHTS_AUTH_OUTAGE_GRACE_SECONDS); a token the API server cannot review
    # now is anonymous, and the probe answers rather than failing for its credentials
    for headers in ({}, STRANGER, FORGED):
        resp = await client.get("/readyz", headers=headers)
        assert resp.status_code == 200
        assert resp.json() == {"status": "degraded", "reasonCodes": ["api-unreachable"]}
        assert host not in resp.text and port not in resp.text and "node-a" not in resp.text
