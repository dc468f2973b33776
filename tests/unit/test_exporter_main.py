"""``exporter.main.serve`` wires the pieces together: extractor socket, pod reflector,
authentication, TLS, limits, and a clean stop.

Runs in-process against the fake API server and a unix-socket stand-in for the
extractor serving a fixed snapshot; certificates come from the real ``openssl``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from exporter.main import serve
from exporter.settings import Settings
from tests.fakes.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.unit.exporter_doubles import standard_snapshot
from tests.unit.tlscerts import make_ca, make_cert


@asynccontextmanager
async def _extractor(path: str) -> AsyncIterator[None]:
    body = standard_snapshot().model_dump_json()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/snapshot", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    try:
        yield
    finally:
        await runner.cleanup()
        Path(path).unlink(missing_ok=True)


@asynccontextmanager
async def _serving(settings: Settings, caplog: pytest.LogCaptureFixture) -> AsyncIterator[str]:
    """Run serve() until the block ends; yields the base URL it logged."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    pattern = re.compile(r"listening on (https?://127\.0\.0\.1:\d+)")
    url = None
    for _ in range(200):
        url = next(
            (m.group(1) for r in caplog.records if (m := pattern.search(r.getMessage()))), None
        )
        if url or task.done():
            break
        await asyncio.sleep(0.05)
    assert url is not None, task.exception() if task.done() else "never listened"
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _until(
    client: httpx.AsyncClient, path: str, key: str, value: object
) -> dict[str, object]:
    for _ in range(200):
        resp = await client.get(path)
        if resp.status_code == 200 and resp.json().get(key) == value:
            body: dict[str, object] = resp.json()
            return body
        await asyncio.sleep(0.05)
    pytest.fail(f"{path} never had {key}={value!r}: {resp.status_code} {resp.text}")


async def test_tls_auth_reflector_and_clean_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime_insights.exporter")
    ca = make_ca(tmp_path, "ri-test-ca")
    server = make_cert(tmp_path, ca, "127.0.0.1")
    trust = ssl.create_default_context(cafile=str(ca.cert))
    sock = f"/tmp/ri-h5a-{uuid.uuid4().hex[:12]}.sock"
    snap = standard_snapshot()
    web_pod = next(p for p in snap.pods if p.name == "web-1")
    main_id = next(c.id for c in snap.containers if c.pod_uid == web_pod.uid and c.name == "main")
    async with FakeApiServer(bookmark_interval=0.5) as api, _extractor(sock):
        api.add_pod(
            make_pod(
                "web-1-from-api",
                "shop",
                uid=web_pod.uid,
                node="node-a",
                containers=[FakeContainer("main", container_id=main_id)],
                labels={"app": "web"},
            )
        )
        api.add_token("scraper-token", "prometheus", ["monitoring"])
        api.allow("prometheus", "get", path="/v1/containers")
        api.allow("prometheus", "post", path="/gather_runtime_info")
        settings = Settings(
            host="127.0.0.1",
            port=0,
            extractor_socket=sock,
            poll_interval_seconds=0.2,
            tls_cert_file=str(server.cert),
            tls_key_file=str(server.key),
            auth_enabled=True,
            kube_enabled=True,
            kubeconfig=str(api.write_kubeconfig(tmp_path / "kubeconfig")),
            node_name="node-a",
        )
        async with (
            _serving(settings, caplog) as url,
            httpx.AsyncClient(base_url=url, verify=trust, timeout=30) as client,
        ):
            assert url.startswith("https://")
            ready = await _until(client, "/readyz", "metadataSource", "api")
            assert ready["ready"] is True
            assert (await client.get("/v1/containers")).status_code == 401
            headers = {"Authorization": "Bearer scraper-token"}
            resp = await client.get("/v1/containers", headers=headers)
            assert resp.status_code == 200
            docs = {d["id"]: d for d in resp.json()["containers"]}
            assert docs[main_id]["pod"] == "web-1-from-api"
            assert docs[main_id]["metadataSource"] == "api"
            assert (await client.get("/metrics", headers=headers)).status_code == 403
            too_big = b"x" * (settings.max_request_bytes + 1)
            resp = await client.post("/gather_runtime_info", headers=headers, content=too_big)
            assert resp.status_code == 413
    assert any("stopping" in r.getMessage() for r in caplog.records)
