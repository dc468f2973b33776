"""The fake API server: its endpoint groups on one aiohttp application."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web

from tests.support.apiserver.proxy import Proxies
from tests.support.apiserver.reviews import Reviews
from tests.support.apiserver.watch import ObjectsAndWatch
from tests.support.apiserver.workloads import Workloads


class FakeApiServer(ObjectsAndWatch, Reviews, Proxies, Workloads):
    """The pod, review and proxy endpoints of a kube-apiserver, in memory."""

    async def __aenter__(self) -> FakeApiServer:
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods_collection)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods_collection)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/portforward", self._portforward)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{target}/proxy", self._proxy)
        app.router.add_route(
            "*", "/api/v1/namespaces/{ns}/pods/{target}/proxy/{path:.*}", self._proxy
        )
        app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", self._get_configmap)
        app.router.add_get("/api/v1/nodes", self._nodes_collection)
        self.add_workload_routes(app)  # after the pod and configmap routes, which win
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review)
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews", self._access_review
        )
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()
        self._client = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.drop_watches()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]

    async def pause(self) -> None:
        """Stop listening (new connections are refused) and cut open watches."""
        await self.drop_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        for connection in list(self._runner.server.connections):
            connection.force_close()

    async def resume(self) -> None:
        """Listen again on the same port."""
        if self._site is None:
            await self._listen()

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for this server with its bearer token (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        out = Path(path)
        out.write_text(json.dumps(config, indent=2))
        return out
