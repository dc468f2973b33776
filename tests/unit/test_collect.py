"""`runtime-insights collect` against the fake API server's pod list and pod proxy.

Exporter backends are small aiohttp servers registered behind the fake's pod proxy: one
answers, one is slower than the per-node timeout, one fails with 500. The merged document
is checked against what the answering backend served.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.collect import run_collect
from extractor.cli import build_parser
from tests.fakes.apiserver import FakeApiServer, make_pod

NS = "runtime-insights"
LABELS = {"app.kubernetes.io/name": "runtime-insights"}
Backend = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _container(ns: str, pod: str, name: str) -> dict[str, Any]:
    cid = secrets.token_hex(32)
    return {
        "id": cid,
        "containerId": f"containerd://{cid}",
        "namespace": ns,
        "pod": pod,
        "container": name,
        "cpu": {"usageSeconds": 12.5},
        "fingerprint": {"os": "debian", "kind": "Python"},
    }


def _pods_document(node: str, pods: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    return {
        "node": node,
        "metadataSource": "api",
        "pods": [
            {
                "uid": secrets.token_hex(8),
                "namespace": ns,
                "pod": pod,
                "cpu": {"usageSeconds": 30.0},
                "containers": [_container(ns, pod, c) for c in containers],
            }
            for ns, pod, containers in pods
        ],
    }


def _serving(document: dict[str, Any]) -> Backend:
    async def handler(request: web.Request) -> web.Response:
        assert request.path == "/v1/pods"
        return web.json_response(document)

    return handler


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({"pods": []})


async def _broken(_: web.Request) -> web.Response:
    return web.json_response({"error": "extractor unreachable"}, status=500)


async def _not_json(_: web.Request) -> web.Response:
    return web.Response(text="<html>proxy error</html>", content_type="text/html")


class Cluster:
    """The fake API server plus one backend server per exporter pod."""

    def __init__(self, kube: FakeApiServer, kubeconfig: Path) -> None:
        self.kube = kube
        self.kubeconfig = kubeconfig
        self._runners: list[web.AppRunner] = []

    async def exporter(
        self, name: str, node: str, backend: Backend, phase: str = "Running"
    ) -> None:
        self.kube.add_pod(make_pod(name, NS, node=node, labels=LABELS, phase=phase))
        app = web.Application()
        app.router.add_get("/{tail:.*}", backend)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        (address,) = runner.addresses
        self.kube.set_pod_backend(NS, name, f"http://127.0.0.1:{address[1]}")

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    async def collect(
        self, *extra: str, timeout: str = "5"
    ) -> tuple[int, dict[str, Any] | None, str]:
        """Runs the real command (in a thread: it owns its event loop), returns exit/doc/stderr."""
        argv = ["collect", "--kubeconfig", str(self.kubeconfig), "--timeout", timeout, *extra]
        args = build_parser().parse_args(argv)
        out, err = io.StringIO(), io.StringIO()

        def run() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return run_collect(args)

        code = await asyncio.to_thread(run)
        text = out.getvalue()
        return code, (json.loads(text) if text else None), err.getvalue()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeApiServer() as kube:
        c = Cluster(kube, kube.write_kubeconfig(tmp_path / "kubeconfig"))
        yield c
        await c.close()


async def test_merges_answering_nodes_and_lists_failed_ones(cluster: Cluster) -> None:
    good = _pods_document("node-a", [("shop", "web-1", ["app", "envoy"]), ("bank", "db-0", ["pg"])])
    await cluster.exporter("ri-aaaaa", "node-a", _serving(good))
    await cluster.exporter("ri-bbbbb", "node-b", _slow)
    await cluster.exporter("ri-ccccc", "node-c", _broken)
    cluster.kube.add_pod(make_pod("unrelated", NS, node="node-a", labels={"app": "other"}))

    code, doc, stderr = await cluster.collect("--insecure-http", timeout="2")

    assert code == 1
    assert doc is not None
    assert doc["nodes"]["ok"] == ["node-a"]
    failed = {f["node"]: f for f in doc["nodes"]["failed"]}
    assert set(failed) == {"node-b", "node-c"}
    assert failed["node-b"]["pod"] == "ri-bbbbb" and "within 2s" in failed["node-b"]["error"]
    assert failed["node-c"]["error"] == "HTTP 500: extractor unreachable"
    assert "node-b" in stderr and "node-c" in stderr

    served = {(p["namespace"], p["pod"]): p for p in good["pods"]}
    assert {(ns, pod) for ns, pods in doc["namespaces"].items() for pod in pods} == set(served)
    for (ns, pod), want in served.items():
        got = doc["namespaces"][ns][pod]
        assert got["node"] == "node-a"
        assert got["uid"] == want["uid"] and got["cpu"] == want["cpu"]
        assert set(got["containers"]) == {c["containerId"] for c in want["containers"]}
        for c in want["containers"]:
            merged = got["containers"][c["containerId"]]
            assert merged == {k: v for k, v in c.items() if k not in ("namespace", "pod")}

    proxied = {(r[2], r[3], r[4], r[5]) for r in cluster.kube.proxy_requests}
    assert proxied == {
        (n, "http", "8443", "/v1/pods") for n in ("ri-aaaaa", "ri-bbbbb", "ri-ccccc")
    }


async def test_all_nodes_answering_exits_zero_and_https_is_the_default(cluster: Cluster) -> None:
    await cluster.exporter(
        "ri-a", "node-a", _serving(_pods_document("node-a", [("x", "p", ["c"])]))
    )
    await cluster.exporter(
        "ri-b", "node-b", _serving(_pods_document("node-b", [("x", "q", ["c"])]))
    )

    code, doc, _ = await cluster.collect("--port", "https")

    assert code == 0
    assert doc is not None
    assert doc["nodes"] == {"ok": ["node-a", "node-b"], "failed": []}
    assert doc["namespaces"]["x"]["p"]["node"] == "node-a"
    assert doc["namespaces"]["x"]["q"]["node"] == "node-b"
    assert {(r[3], r[4]) for r in cluster.kube.proxy_requests} == {("https", "https")}


async def test_pending_pods_and_garbage_answers_are_failures(cluster: Cluster) -> None:
    await cluster.exporter("ri-a", "node-a", _not_json)
    await cluster.exporter("ri-b", "node-b", _broken, phase="Pending")

    code, doc, _ = await cluster.collect("--insecure-http")

    assert code == 1
    assert doc is not None
    errors = {f["node"]: f["error"] for f in doc["nodes"]["failed"]}
    assert "not JSON" in errors["node-a"]
    assert errors["node-b"] == "exporter pod is Pending"
    assert doc["nodes"]["ok"] == [] and doc["namespaces"] == {}
    assert [r[2] for r in cluster.kube.proxy_requests] == ["ri-a"]


async def test_no_exporter_pods_exits_two(cluster: Cluster) -> None:
    code, doc, stderr = await cluster.collect()
    assert code == 2 and doc is None
    assert "no pods match" in stderr and NS in stderr


async def test_bad_kubeconfig_exits_two(tmp_path: Path) -> None:
    args = build_parser().parse_args(["collect", "--kubeconfig", str(tmp_path / "missing")])
    assert await asyncio.to_thread(run_collect, args) == 2


async def test_unreachable_api_server_exits_two(cluster: Cluster) -> None:
    await cluster.kube.pause()
    code, doc, stderr = await cluster.collect()
    assert code == 2 and doc is None
    assert "API server" in stderr
