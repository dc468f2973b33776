"""`runtime-insights collect` against the fake API server's pod list, pod proxy and
port-forward.

Pod-proxy tests: exporter backends are small aiohttp servers registered behind the fake's
pod proxy: one answers, one is slower than the per-node timeout, one fails with 500.

Port-forward tests: exporter-like servers as the manifests deploy them — authentication
on (the real `exporter.security.auth` middleware doing TokenReview and SubjectAccessReview against a
fake API server), real TLS with openssl-minted certificates — reached through the fake's
WebSocket port-forward. The merged document is checked against what the answering
backends served, and each backend records who it authenticated and over what scheme.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.cluster.collect import (
    NO_EXPORTER,
    NODES_ROLE,
    CollectOptions,
    Tunnel,
    fetch_node_forwarded,
    run_collect,
)
from exporter.cluster.daemonset import ExporterPod
from exporter.kube.client import load_configuration
from exporter.kube.podmeta import PodMeta
from exporter.node.state import State
from exporter.security.auth import USER_KEY
from runtime_insights.cli import build_parser
from tests.support.apiserver import FakeApiServer, make_node, make_pod
from tests.support.certs import CertPair, make_ca, make_cert
from tests.support.exporter_doubles import (
    FakeLookup,
    client_for,
    workload_meta,
    workload_snapshot,
)
from tests.support.parts import Parts, settings_for

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


@dataclass
class Seen:
    """What one authenticating exporter saw: (authenticated user, scheme) per request."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    server: CertPair  # names 127.0.0.1 and localhost, like tests.support.certs makes them
    other_ca: CertPair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    directory = tmp_path_factory.mktemp("collect-pki")
    ca = make_ca(directory, "exporter-ca")
    return Pki(ca, make_cert(directory, ca, "exporter"), make_ca(directory, "unrelated-ca"))


class Cluster:
    """The fake API server plus one backend server per exporter pod."""

    def __init__(self, kube: FakeApiServer, kubeconfig: Path, tmp: Path) -> None:
        self.kube = kube
        self.kubeconfig = kubeconfig
        self.tmp = tmp
        self._runners: list[web.AppRunner] = []
        self._parts: list[Parts] = []

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

    async def authenticating_exporter(
        self,
        name: str,
        node: str,
        backend: Backend,
        *,
        pki: Pki | None,
        reviews: FakeApiServer | None = None,
    ) -> Seen:
        """An exporter as deployed: auth on (reviews by `reviews`, default the cluster's
        API server), TLS with `pki.server` unless `pki` is None, container port
        https=8443 reachable through the fake's port-forward and pod proxy."""
        reviewer = reviews or self.kube
        kubeconfig = reviewer.write_kubeconfig(self.tmp / f"exporter-{name}.kubeconfig")
        parts = Parts(
            settings_for(
                auth_enabled=True,
                kubeconfig=str(kubeconfig),
                tls_cert_file=str(pki.server.cert) if pki else None,
                tls_key_file=str(pki.server.key) if pki else None,
            )
        )
        self._parts.append(parts)
        seen = Seen()

        async def recording(request: web.Request) -> web.StreamResponse:
            seen.requests.append((request[USER_KEY], request.scheme))
            return await backend(request)

        @web.middleware
        async def raw_header(request: web.Request, handler: Any) -> web.StreamResponse:
            seen.authorization.append(request.headers.get("Authorization"))
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[raw_header, parts.auth_middleware()])
        app.router.add_get("/{tail:.*}", recording)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=parts.tls()).start()
        self._runners.append(runner)
        (address,) = runner.addresses
        pod = make_pod(name, NS, node=node, labels=LABELS)
        pod["spec"]["containers"][0]["ports"] = [
            {"name": "https", "containerPort": 8443, "protocol": "TCP"}
        ]
        self.kube.add_pod(pod)
        self.kube.set_pod_portforward(NS, name, 8443, "127.0.0.1", address[1])
        if pki is None:
            self.kube.set_pod_backend(NS, name, f"http://127.0.0.1:{address[1]}")
        return seen

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        for parts in self._parts:
            await parts.aclose()

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
        c = Cluster(kube, kube.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
        yield c
        await c.close()


async def test_merges_answering_nodes_and_lists_failed_ones(cluster: Cluster) -> None:
    good = _pods_document("node-a", [("shop", "web-1", ["app", "envoy"]), ("bank", "db-0", ["pg"])])
    await cluster.exporter("ri-aaaaa", "node-a", _serving(good))
    await cluster.exporter("ri-bbbbb", "node-b", _slow)
    await cluster.exporter("ri-ccccc", "node-c", _broken)
    cluster.kube.add_pod(make_pod("unrelated", NS, node="node-a", labels={"app": "other"}))

    code, doc, stderr = await cluster.collect("--via", "proxy", "--insecure-http", timeout="2")

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
    for node in ("node-a", "node-b"):
        cluster.kube.add_node(make_node(node))
    await cluster.exporter(
        "ri-a", "node-a", _serving(_pods_document("node-a", [("x", "p", ["c"])]))
    )
    await cluster.exporter(
        "ri-b", "node-b", _serving(_pods_document("node-b", [("x", "q", ["c"])]))
    )

    code, doc, _ = await cluster.collect("--via", "proxy", "--port", "https")

    assert code == 0
    assert doc is not None
    assert doc["nodes"] == {"ok": ["node-a", "node-b"], "failed": []}
    assert doc["namespaces"]["x"]["p"]["node"] == "node-a"
    assert doc["namespaces"]["x"]["q"]["node"] == "node-b"
    assert {(r[3], r[4]) for r in cluster.kube.proxy_requests} == {("https", "https")}


async def test_pending_pods_and_garbage_answers_are_failures(cluster: Cluster) -> None:
    await cluster.exporter("ri-a", "node-a", _not_json)
    await cluster.exporter("ri-b", "node-b", _broken, phase="Pending")

    code, doc, _ = await cluster.collect("--via", "proxy", "--insecure-http")

    assert code == 1
    assert doc is not None
    errors = {f["node"]: f["error"] for f in doc["nodes"]["failed"]}
    assert "not JSON" in errors["node-a"]
    assert errors["node-b"] == "exporter pod is Pending"
    assert doc["nodes"]["ok"] == [] and doc["namespaces"] == {}
    assert [r[2] for r in cluster.kube.proxy_requests] == ["ri-a"]


def _scheduling_pod(name: str, node: str) -> dict[str, Any]:
    """A DaemonSet pod not bound yet: pinned to its node by the controller's node affinity."""
    pod = make_pod(name, NS, node=None, labels=LABELS, phase="Pending", pod_ip=None)
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    return pod


async def test_nodes_without_an_exporter_pod_are_failures(cluster: Cluster) -> None:
    served = _pods_document("node-a", [("x", "p", ["c"])])
    await cluster.exporter("ri-a", "node-a", _serving(served))
    cluster.kube.add_pod(_scheduling_pod("ri-b", "node-b"))
    cluster.kube.add_node(make_node("node-a"))
    cluster.kube.add_node(make_node("node-b"))
    cluster.kube.add_node(make_node("node-c", taints=[{"key": "gpu", "effect": "NoSchedule"}]))
    cluster.kube.add_node(make_node("node-d", unschedulable=True))  # cordoned: not expected
    cluster.kube.add_node(make_node("win-1", os="windows"))  # not in the nodeSelector

    code, doc, stderr = await cluster.collect("--via", "proxy", "--insecure-http")

    assert code == 1
    assert doc is not None
    assert doc["nodes"]["ok"] == ["node-a"]
    assert doc["nodes"]["failed"] == [
        {"node": "node-b", "pod": "ri-b", "error": "exporter pod is Pending"},
        {"node": "node-c", "pod": None, "error": NO_EXPORTER},
    ]
    assert _served_pods(doc) == {("x", "p")}
    assert f"node node-c: {NO_EXPORTER}" in stderr
    assert "node node-b (pod ri-b): exporter pod is Pending" in stderr
    assert cluster.kube.calls["nodes"] == 1


async def test_nodes_that_cannot_be_listed_exit_two(cluster: Cluster) -> None:
    await cluster.exporter("ri-a", "node-a", _serving(_pods_document("node-a", [])))
    cluster.kube.forbid("nodes")

    code, doc, stderr = await cluster.collect("--via", "proxy", "--insecure-http")

    assert code == 2 and doc is None
    assert "listing nodes failed: HTTP 403" in stderr
    assert f"bind the {NODES_ROLE} ClusterRole" in stderr
    assert cluster.kube.proxy_requests == []  # nothing half-collected


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


def _grant_reader(kube: FakeApiServer, user: str) -> None:
    """The caller's kubeconfig token is a real user to TokenReview, allowed GET /v1/pods."""
    kube.add_token(kube.token, user)
    kube.allow(user, "get", path="/v1/*")


def _served_pods(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(ns, pod) for ns, pods in doc["namespaces"].items() for pod in pods}


async def test_port_forward_reaches_authenticating_tls_exporters(
    cluster: Cluster, pki: Pki
) -> None:
    _grant_reader(cluster.kube, "alice")
    good = _pods_document("node-a", [("shop", "web-1", ["app", "envoy"])])
    seen_a = await cluster.authenticating_exporter("ri-a", "node-a", _serving(good), pki=pki)
    async with FakeApiServer() as denying:
        denying.add_token(cluster.kube.token, "alice")  # known there, but granted nothing
        seen_b = await cluster.authenticating_exporter(
            "ri-b", "node-b", _serving(good), pki=pki, reviews=denying
        )
        seen_c = await cluster.authenticating_exporter("ri-c", "node-c", _slow, pki=pki)

        code, doc, stderr = await cluster.collect(
            "--port", "https", "--ca-file", str(pki.ca.cert), "--tls-server-name", "localhost",
            timeout="2",
        )  # fmt: skip

        assert denying.calls["subjectaccessreviews"] >= 1

    assert code == 1
    assert doc is not None
    assert doc["nodes"]["ok"] == ["node-a"]
    failed = {f["node"]: f["error"] for f in doc["nodes"]["failed"]}
    assert set(failed) == {"node-b", "node-c"}
    assert failed["node-b"].startswith('HTTP 403: forbidden: User "alice" cannot get /v1/pods')
    assert "runtime-insights-reader" in failed["node-b"]
    assert failed["node-c"] == "no answer within 2s"
    assert "node-b" in stderr and "node-c" in stderr

    want = good["pods"][0]
    got = doc["namespaces"]["shop"]["web-1"]
    assert _served_pods(doc) == {("shop", "web-1")}
    assert got["node"] == "node-a" and got["uid"] == want["uid"]
    assert set(got["containers"]) == {c["containerId"] for c in want["containers"]}

    # TLS and the caller's own token went end to end; nothing went through the pod proxy.
    assert seen_a.requests == [("alice", "https")] and seen_c.requests == [("alice", "https")]
    assert seen_b.requests == [] and seen_b.authorization == [f"Bearer {cluster.kube.token}"]
    assert sorted(cluster.kube.portforward_requests) == [
        (NS, name, "8443") for name in ("ri-a", "ri-b", "ri-c")
    ]
    assert cluster.kube.proxy_requests == []


async def test_port_forward_with_every_node_answering_exits_zero(
    cluster: Cluster, pki: Pki
) -> None:
    _grant_reader(cluster.kube, "alice")
    docs = {
        node: _pods_document(node, [("x", f"p-{node}", ["c"])]) for node in ("node-a", "node-b")
    }
    for index, (node, document) in enumerate(docs.items()):
        await cluster.authenticating_exporter(f"ri-{index}", node, _serving(document), pki=pki)

    code, doc, stderr = await cluster.collect(
        "--ca-file", str(pki.ca.cert), "--tls-server-name", "127.0.0.1"
    )

    assert (code, stderr) == (0, "")
    assert doc is not None
    assert doc["nodes"] == {"ok": ["node-a", "node-b"], "failed": []}
    assert _served_pods(doc) == {("x", "p-node-a"), ("x", "p-node-b")}
    assert {r[2] for r in cluster.kube.portforward_requests} == {"8443"}  # the default --port


async def test_untrusted_or_misnamed_exporter_certificates_are_refused(
    cluster: Cluster, pki: Pki
) -> None:
    _grant_reader(cluster.kube, "alice")
    seen = await cluster.authenticating_exporter(
        "ri-a", "node-a", _serving(_pods_document("node-a", [])), pki=pki
    )

    runs = {
        "wrong CA": ("--ca-file", str(pki.other_ca.cert), "--tls-server-name", "localhost"),
        "default name": ("--ca-file", str(pki.ca.cert)),
    }
    errors = {}
    for label, extra in runs.items():
        code, doc, _ = await cluster.collect(*extra)
        assert code == 1 and doc is not None, label
        (failure,) = doc["nodes"]["failed"]
        errors[label] = failure["error"]

    assert errors["wrong CA"].startswith("TLS: unable to get local issuer certificate; ")
    assert "--ca-file" in errors["wrong CA"]
    # The Service DNS name the manifests' certificates carry is the default expectation.
    assert "runtime-insights.runtime-insights.svc" in errors["default name"]
    assert "Hostname mismatch" in errors["default name"]
    assert seen.authorization == []  # no token was sent to an exporter that failed TLS


async def test_proxy_mode_cannot_pass_auth_but_port_forward_can(cluster: Cluster) -> None:
    _grant_reader(cluster.kube, "alice")
    served = _pods_document("node-a", [("x", "p", ["c"])])
    seen = await cluster.authenticating_exporter("ri-a", "node-a", _serving(served), pki=None)

    code, doc, _ = await cluster.collect("--via", "proxy", "--insecure-http")

    assert code == 1 and doc is not None
    (failure,) = doc["nodes"]["failed"]
    assert failure["error"].startswith("HTTP 401: Unauthorized: a bearer token is required")
    assert "--via port-forward" in failure["error"]
    assert seen.authorization == [None]  # the API server's proxy did not pass the token on

    code, doc, _ = await cluster.collect("--insecure-http", "--port", "https")

    assert code == 0 and doc is not None
    assert _served_pods(doc) == {("x", "p")}
    assert seen.requests == [("alice", "http")]


async def test_tunnel_failures_are_reported_per_node(cluster: Cluster) -> None:
    _grant_reader(cluster.kube, "alice")
    await cluster.authenticating_exporter(
        "ri-a", "node-a", _serving(_pods_document("node-a", [])), pki=None
    )
    unreachable = make_pod("ri-b", NS, node="node-b", labels=LABELS)
    cluster.kube.add_pod(unreachable)  # no port-forward target: nothing listens in the pod

    code, doc, _ = await cluster.collect("--insecure-http", "--port", "https")

    assert code == 1 and doc is not None
    errors = {f["node"]: f["error"] for f in doc["nodes"]["failed"]}
    assert errors["node-b"] == "pod has no container port named 'https' (named ports: none)"
    assert doc["nodes"]["ok"] == ["node-a"]

    code, doc, _ = await cluster.collect("--insecure-http", "--port", "8443")

    assert code == 1 and doc is not None
    errors = {f["node"]: f["error"] for f in doc["nodes"]["failed"]}
    uid = unreachable["metadata"]["uid"]
    assert errors["node-b"].startswith(
        f"port-forward error: error forwarding port 8443 to pod ri-b, uid {uid}: "
    )
    assert "connection refused" in errors["node-b"]


async def test_tokens_the_exporter_rejects_or_lacks_are_explained(cluster: Cluster) -> None:
    async with FakeApiServer() as strangers:  # knows no token: TokenReview says no
        await cluster.authenticating_exporter(
            "ri-a", "node-a", _serving(_pods_document("node-a", [])), pki=None, reviews=strangers
        )

        code, doc, _ = await cluster.collect("--insecure-http")

        assert code == 1 and doc is not None
        (failure,) = doc["nodes"]["failed"]
        assert failure["error"] == (
            "HTTP 401: Unauthorized: invalid bearer token "
            "(the exporter did not accept the kubeconfig's bearer token)"
        )

        configuration = load_configuration(str(cluster.kubeconfig))  # a client-certificate user
        options = CollectOptions(NS, "8443", insecure_http=True, timeout=5)
        pod = ExporterPod("ri-a", "node-a", "Running")
        result = await fetch_node_forwarded(Tunnel(configuration, None, None), pod, options)

        assert result.error is not None and result.error.startswith(
            "HTTP 401: Unauthorized: a bearer token is required (the kubeconfig's user has no "
            "bearer token"
        )


async def _exporter_pods(state: State, meta: PodMeta) -> dict[str, Any]:
    """The /v1/pods document a real exporter serves for ``state``."""
    async with client_for(state, FakeLookup([meta])) as client:
        resp = await client.get("/v1/pods")
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def _served_namespaces(state: State, meta: PodMeta) -> list[dict[str, Any]]:
    async with client_for(state, FakeLookup([meta])) as client:
        resp = await client.get("/v1/namespaces")
        namespaces: list[dict[str, Any]] = (await resp.json())["namespaces"]
        return namespaces


async def test_totals_add_every_nodes_pods_per_namespace_and_owner(cluster: Cluster) -> None:
    """Two nodes, each running a pod of the same Deployment with its own request: the
    cluster's totals are the sums of what each node's /v1/namespaces says, and the
    efficiency is the summed usage over the summed requests."""
    states, metas, per_node = [], [], []
    for i, request in enumerate((40, 400)):
        state = State()
        state.record(workload_snapshot(1_700_000_000.0, 3_000_000_000))
        state.record(workload_snapshot(1_700_000_010.0, 3_000_000_000 + 500_000_000 * (i + 1)))
        meta = workload_meta(cpu_request_millicores=request)
        states.append(state)
        metas.append(meta)
        per_node.append(await _served_namespaces(state, meta))
    for i, node in enumerate(("node-a", "node-b")):
        body = await _exporter_pods(states[i], metas[i])
        body["pods"][0]["pod"] = f"{body['pods'][0]['pod']}-{i}"  # two pods, not one twice
        await cluster.exporter(f"ri-{i}", node, _serving(body))

    code, doc, _ = await cluster.collect("--via", "proxy", "--insecure-http")

    assert code == 0 and doc is not None
    (total,) = doc["totals"]
    (owner,) = total["owners"]
    nodes = [ns for (ns,) in per_node]
    assert total["pods"] == owner["pods"] == 2
    for resource, fields in (
        ("cpu", ("usedCores", "requestedCores", "limitCores", "billableCores", "idleCores")),
        ("memory", ("workingSetBytes", "requestedBytes", "billableBytes", "idleBytes")),
    ):
        for name in fields:
            want = sum(n[resource][name] for n in nodes)
            assert total[resource][name] == pytest.approx(want), (resource, name)
            assert owner[resource][name] == pytest.approx(want), (resource, name)
    used = sum(n["cpu"]["usedCores"] for n in nodes)
    requested = sum(n["cpu"]["requestedCores"] for n in nodes)
    assert total["cpu"]["efficiency"] == pytest.approx(used / requested)
