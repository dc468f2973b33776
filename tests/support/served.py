"""The exporter as ``runtime-insights exporter`` runs it, in-process, for tests of its
network behaviour: built by the wiring (exporter/wiring.py ``build``) from Settings,
started on its Lifecycle, reading snapshots from a unix-socket extractor stand-in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.lifecycle import Lifecycle
from exporter.settings import Settings
from exporter.wiring import Exporter, build
from tests.support.apiserver import FakeApiServer
from tests.support.exporter_doubles import standard_snapshot


def socket_path(tag: str) -> str:
    """A unique unix socket path short enough for AF_UNIX (tmp_path can be too long)."""
    return f"/tmp/ri-{tag}-{uuid.uuid4().hex[:12]}.sock"


@asynccontextmanager
async def extractor_standin(
    path: str, body: Callable[[], str] | None = None
) -> AsyncIterator[None]:
    """A unix-socket extractor serving ``body()`` (default: the standard snapshot)."""
    fixed = standard_snapshot().model_dump_json()

    async def handler(request: web.Request) -> web.Response:
        text = body() if body is not None else fixed
        return web.Response(text=text, content_type="application/json")

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


def settings_with_api(api: FakeApiServer, directory: Path, socket: str, **values: Any) -> Settings:
    """Settings for an exporter on a free loopback port reading ``socket``, with the pod
    reflector watching node ``node-a`` of ``api`` (a kubeconfig written in ``directory``)."""
    return Settings(
        host="127.0.0.1",
        port=0,
        extractor_socket=socket,
        kube_enabled=True,
        kubeconfig=str(api.write_kubeconfig(directory / "kubeconfig")),
        node_name="node-a",
        **values,
    )


@dataclass
class Served:
    exporter: Exporter
    host: str
    port: int

    @property
    def url(self) -> str:
        scheme = "https" if self.exporter.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    """Every part built and started as the command does; stopped however the block ends."""
    parts = Lifecycle()
    try:
        exporter = build(settings, parts)
        await parts.start()
        host, port = exporter.runner.addresses[0][:2]
        yield Served(exporter, host, port)
    finally:
        await parts.stop()
