"""The custom metrics API across nodes: one exporter answers for the whole DaemonSet.

Real parts only: every exporter is the real application (`build_app`) serving real TLS
(certificates from `openssl`) with authentication on — TokenReview/SubjectAccessReview
against the fake API server, which also lists the DaemonSet's pods (the peers) and answers
where a pod runs. Each "node" listens on its own loopback address (all of 127.0.0.0/8 is
local on Linux) and the same port, as pods of a DaemonSet do. Expected values are read
from each node's own State, never written down.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import ValidationError

from exporter.cluster.peers import Peer, PeerDirectory, PeerListError, Peers
from exporter.http.app import build_app
from exporter.kube.quantity import parse_quantity
from exporter.kube.reflector import PodReflector
from exporter.node.state import State
from exporter.settings import Settings
from exporter.wiring import StartupError, load_settings
from tests.exporter.http.test_custom_metrics import METRIC_VALUE_LIST, STATUS
from tests.support.apiserver import FakeApiServer, make_pod, make_workload
from tests.support.certs import CertPair, make_ca, make_cert
from tests.support.exporter_doubles import FakeLookup, api_meta_for, pod_with, snapshot
from tests.support.parts import Parts

ROOT = "/apis/custom.metrics.k8s.io/v1beta2"
SERVER_NAME = "localhost"  # a DNS name in the test serving certificate, like the Service's
EXPORTER_SA = "system:serviceaccount:runtime-insights:runtime-insights"
HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
HPA_TOKEN = "hpa-token"
DAEMONSET_LABELS = {"app.kubernetes.io/name": "runtime-insights"}
T0 = 1_700_000_000.0


def _state(node: str, cpu_ns: int) -> State:
    """Two passes, 15 s apart, of a node running `web-<node>` (shop) and `dns-<node>`."""
    state = State()
    for step, taken_at in enumerate((T0, T0 + 15)):
        pods = [
            pod_with(
                "shop",
                f"web-{node}",
                str(uuid.uuid5(uuid.NAMESPACE_DNS, f"web-{node}")),
                [("main", None)],
                cpu_ns=cpu_ns * (step + 1),
                taken_at=taken_at,
            ),
            pod_with(
                "infra",
                f"dns-{node}",
                str(uuid.uuid5(uuid.NAMESPACE_DNS, f"dns-{node}")),
                [("coredns", None)],
                taken_at=taken_at,
            ),
        ]
        state.record(snapshot(pods, taken_at).model_copy(update={"node": node}))
    return state


def _expected_rates(state: State, namespace: str) -> dict[str, Decimal]:
    """API pod name -> cores, from the node's own two snapshots."""
    assert state.snapshot is not None and state.previous is not None
    out = {}
    for pod in state.snapshot.pods:
        old = next(p for p in state.previous.pods if p.uid == pod.uid)
        if pod.namespace != namespace:
            continue
        assert pod.usage and pod.usage.cpu and old.usage and old.usage.cpu
        cores = (pod.usage.cpu.usage_ns - old.usage.cpu.usage_ns) / 1e9 / 15
        out[f"{pod.name}-api"] = Decimal(str(cores))
    return out


@dataclass
class Node:
    name: str
    address: str
    state: State | None = None
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, scope)
    peers: Peers | None = None


@dataclass
class Cluster:
    api: FakeApiServer
    port: int
    ca: CertPair
    nodes: dict[str, Node]
    client: httpx.AsyncClient
    aggregator: httpx.AsyncClient
    """Presents the front-proxy client certificate, as the kube-aggregator does."""

    async def via_aggregator(self, node: str, path: str) -> httpx.Response:
        """The HPA's request as the aggregation layer forwards it: the front-proxy
        certificate and the HPA's identity in X-Remote-* headers, no token."""
        return await self.aggregator.get(
            f"https://{self.nodes[node].address}:{self.port}{path}",
            headers={"X-Remote-User": HPA, "X-Remote-Group": "system:serviceaccounts"},
            extensions={"sni_hostname": SERVER_NAME},
        )

    async def scalar(self, node: str, name: str) -> float:
        resp = await self.get(node, "/metrics")
        line = next(x for x in resp.text.splitlines() if x.startswith(name + " "))
        return float(line.split()[1])

    async def get(self, node: str, path: str, token: str = HPA_TOKEN) -> httpx.Response:
        return await self.client.get(
            f"https://{self.nodes[node].address}:{self.port}{path}",
            headers={"Authorization": f"Bearer {token}"},
            extensions={"sni_hostname": SERVER_NAME},
        )

    async def metric(self, node: str, name: str) -> dict[str, float]:
        """Series of `name` in the node's /metrics, by their `peer` label."""
        resp = await self.get(node, "/metrics")
        assert resp.status_code == 200, resp.text
        out = {}
        for line in resp.text.splitlines():
            if line.startswith(name + "{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.split('peer="', 1)[1].split('"', 1)[0]] = float(value)
        return out


def _counting(node: Node) -> Middleware:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ROOT + "/"):
            node.seen.append((request.path, request.query.get("scope")))
        return await handler(request)

    return count


def _settings(cluster_dir: Path, node: Node, port: int, **over: Any) -> Settings:
    tls = cluster_dir / "serving"
    values: dict[str, Any] = {
        "host": node.address,
        "port": port,
        "tls_cert_file": str(tls.with_suffix(".crt")),
        "tls_key_file": str(tls.with_suffix(".key")),
        "auth_enabled": True,
        "kube_enabled": True,
        "kubeconfig": str(cluster_dir / "kubeconfig"),
        "node_name": node.name,
        "peers_enabled": True,
        "peer_namespace": cluster_dir.name,
        "peer_port": port,
        "peer_ca_file": str(cluster_dir / "ri-peer-ca.crt"),
        "peer_server_name": SERVER_NAME,
        "peer_timeout_seconds": 1.0,
        "requestheader_client_ca_file": str(cluster_dir / "front-proxy-ca.crt"),
        "requestheader_allowed_names": ["front-proxy-client"],
    }
    return Settings(**(values | over))


async def _exporter(
    stack: AsyncExitStack, settings: Settings, node: Node, reviews: Settings | None = None
) -> None:
    """One node's real exporter application, listening with TLS on its own address; its
    callers are reviewed with ``reviews``' credentials (default: its own)."""
    assert node.state is not None and node.state.snapshot is not None
    parts = Parts(settings)
    stack.push_async_callback(parts.aclose)
    reviewer = Parts(reviews or settings)
    stack.push_async_callback(reviewer.aclose)
    node.peers = parts.peers()
    stack.push_async_callback(node.peers.aclose)
    # the node's pod reflector feeds its event streams, as in the exporter
    reflector = PodReflector(parts.kube, node.name, watch_timeout_seconds=1)
    await reflector.start()
    stack.push_async_callback(reflector.stop)
    app = build_app(
        node.state,
        FakeLookup(api_meta_for(node.state.snapshot)),
        stale_after_seconds=settings.stale_after_seconds,
        middlewares=[_counting(node), reviewer.auth_middleware()],
        peers=node.peers,
        kube=parts.kube,
        events=reflector,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, node.address, settings.port, ssl_context=parts.tls()).start()


async def _hanging(stack: AsyncExitStack, address: str, port: int) -> None:
    """A peer that accepts connections and never says a word (not even TLS)."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, address, port)
    stack.callback(server.close)
    stack.callback(release.set)


async def _malformed(stack: AsyncExitStack, address: str, port: int, tls: ssl.SSLContext) -> None:
    """A peer answering with a pod of another namespace (a bug or a hostile pod)."""

    async def answer(request: web.Request) -> web.Response:
        item = {
            "describedObject": {"kind": "Pod", "namespace": "elsewhere", "name": "intruder"},
            "metric": {"name": "cpu_usage_rate", "selector": {}},
            "timestamp": "2026-01-01T00:00:00Z",
            "value": "99",
        }
        return web.json_response({"kind": "MetricValueList", "items": [item]})

    app = web.Application()
    app.router.add_get(ROOT + "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, address, port, ssl_context=tls).start()


@asynccontextmanager
async def _cluster(
    tmp_path: Path,
    healthy: dict[str, int],
    *,
    dead: tuple[str, ...] = (),
    hanging: tuple[str, ...] = (),
    malformed: tuple[str, ...] = (),
    denying: tuple[str, ...] = (),
    **settings: Any,
) -> AsyncIterator[Cluster]:
    """Exporters on `healthy` nodes (name -> CPU per pass), plus broken peers by kind."""
    cluster_dir = tmp_path / f"ri-peers-{uuid.uuid4().hex[:10]}"
    cluster_dir.mkdir()
    ca = make_ca(cluster_dir, "ri-peer-ca")
    make_cert(cluster_dir, ca, SERVER_NAME, stem="serving")
    proxy_ca = make_ca(cluster_dir, "front-proxy-ca")
    front_proxy = make_cert(cluster_dir, proxy_ca, "front-proxy-client", client=True)
    base = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}"
    names = [*healthy, *dead, *hanging, *malformed, *denying]
    nodes = {n: Node(n, f"{base}.{i + 1}") for i, n in enumerate(names)}
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(FakeApiServer())
        other_api = await stack.enter_async_context(FakeApiServer())  # grants nothing
        api.write_kubeconfig(cluster_dir / "kubeconfig")
        other_kubeconfig = other_api.write_kubeconfig(cluster_dir / "other-kubeconfig")
        for fake in (api, other_api):
            fake.add_token(api.token, EXPORTER_SA)
        api.add_token(HPA_TOKEN, HPA)
        for user in (EXPORTER_SA, HPA):
            for verb in ("get", "list"):
                api.allow(user, verb, resource="pods", api_group="custom.metrics.k8s.io")
        for verb in ("get", "list"):  # the HPA's bootstrap role: every resource of both APIs
            for group in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
                api.allow(HPA, verb, resource="*", api_group=group)
        api.allow(HPA, "get", path="/metrics")
        api.allow(HPA, "get", path="/v1/cluster/events")
        api.allow(EXPORTER_SA, "get", path="/v1/events")  # manifests/base/rbac.yaml
        for node in nodes.values():
            api.add_pod(
                make_pod(
                    f"runtime-insights-{node.name}",
                    cluster_dir.name,
                    node=node.name,
                    labels=DAEMONSET_LABELS,
                    pod_ip=node.address,
                )
            )
            # the workload pods the node runs, as the API server knows them (where each
            # runs is what tells the fan-out whom to ask)
            for ns, app, tier in (
                ("shop", f"web-{node.name}", "backend"),
                ("infra", f"dns-{node.name}", "sys"),
            ):
                api.add_pod(
                    make_pod(f"{app}-api", ns, node=node.name, labels={"app": app, "tier": tier})
                )
        # not peers: a pending exporter, a pod without the DaemonSet's labels (both would
        # be counted as failures if asked: nothing listens at their addresses)
        api.add_pod(
            make_pod(
                "runtime-insights-pending",
                cluster_dir.name,
                node="node-pending",
                labels=DAEMONSET_LABELS,
                phase="Pending",
                pod_ip=f"{base}.250",
            )
        )
        api.add_pod(make_pod("other", cluster_dir.name, node="node-x", pod_ip=f"{base}.251"))
        probe = socket_port(nodes[names[0]].address)
        for name in names:
            node = nodes[name]
            cfg = _settings(cluster_dir, node, probe, **settings)
            if name in healthy:
                node.state = _state(name, healthy[name])
                await _exporter(stack, cfg, node)
            elif name in denying:
                node.state = _state(name, 1_000_000_000)
                other = cfg.model_copy(update={"kubeconfig": str(other_kubeconfig)})
                await _exporter(stack, cfg, node, reviews=other)
            elif name in hanging:
                await _hanging(stack, node.address, probe)
            elif name in malformed:
                tls_parts = Parts(cfg)
                stack.push_async_callback(tls_parts.aclose)
                tls = tls_parts.tls()
                assert tls is not None
                await _malformed(stack, node.address, probe, tls)
        trust = ssl.create_default_context(cafile=str(ca.cert))
        client = await stack.enter_async_context(httpx.AsyncClient(verify=trust, timeout=30))
        proxy_trust = ssl.create_default_context(cafile=str(ca.cert))
        proxy_trust.load_cert_chain(front_proxy.cert, front_proxy.key)
        aggregator = await stack.enter_async_context(
            httpx.AsyncClient(verify=proxy_trust, timeout=30)
        )
        yield Cluster(api, probe, ca, nodes, client, aggregator)


def socket_port(address: str) -> int:
    """A port free on `address` (the other nodes' addresses are unused, so free there too)."""
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def _by_name(body: dict[str, Any]) -> dict[str, Decimal]:
    return {i["describedObject"]["name"]: parse_quantity(i["value"]) for i in body["items"]}


async def test_one_exporter_answers_for_the_pods_of_every_node(tmp_path: Path) -> None:
    cpu = {"node-a": 3_000_000_000, "node-b": 6_000_000_000, "node-c": 9_000_000_000}
    async with _cluster(tmp_path, cpu) as cluster:
        path = f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate?labelSelector=tier%3Dbackend"
        resp = await cluster.get("node-a", path)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        jsonschema.validate(body, METRIC_VALUE_LIST)
        expected: dict[str, Decimal] = {}
        for node in cluster.nodes.values():
            assert node.state is not None
            expected |= _expected_rates(node.state, "shop")
        assert len(expected) == 3
        assert _by_name(body) == expected
        assert {i["windowSeconds"] for i in body["items"]} == {15}

        # each peer was asked once, for its node only; nobody asked node-a back
        for name in ("node-b", "node-c"):
            assert cluster.nodes[name].seen == [
                (f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate", "node")
            ]
        assert cluster.nodes["node-a"].seen == [
            (f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate", None)
        ]
        assert await cluster.metric("node-a", "runtime_insights_exporter_peer_requests_total") == {
            "node-b": 1.0,
            "node-c": 1.0,
        }
        assert await cluster.metric("node-a", "runtime_insights_exporter_peer_errors_total") == {}

        # any node gives the same answer; the peer list and where the selected pods run
        # are listed once per TTL per exporter
        lists = cluster.api.calls["list"]
        again = await cluster.get("node-c", path)
        assert _by_name(again.json()) == expected
        await cluster.get("node-c", path)
        assert cluster.api.calls["list"] == lists + 2


async def test_a_local_only_request_never_fans_out(tmp_path: Path) -> None:
    async with _cluster(tmp_path, {"node-a": 3_000_000_000, "node-b": 5_000_000_000}) as cluster:
        resp = await cluster.get(
            "node-a", f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate?scope=node"
        )
        assert resp.status_code == 200
        jsonschema.validate(resp.json(), METRIC_VALUE_LIST)
        state = cluster.nodes["node-a"].state
        assert state is not None
        assert _by_name(resp.json()) == _expected_rates(state, "shop")
        assert cluster.nodes["node-b"].seen == []
        peer_lists = [q for _, q in cluster.api.pod_requests if q.get("labelSelector")]
        assert peer_lists == []  # neither the peers nor where pods run were looked up


async def test_a_named_pod_is_asked_of_its_node_else_of_all(tmp_path: Path) -> None:
    cpu = {"node-a": 1_000_000_000, "node-b": 2_000_000_000, "node-c": 4_000_000_000}
    async with _cluster(tmp_path, cpu) as cluster:
        # the API knows where web-node-b-api runs: only node-b is asked
        resp = await cluster.get(
            "node-a", f"{ROOT}/namespaces/shop/pods/web-node-b-api/cpu_seconds_total"
        )
        assert resp.status_code == 200, resp.text
        jsonschema.validate(resp.json(), METRIC_VALUE_LIST)
        state_b = cluster.nodes["node-b"].state
        assert state_b is not None and state_b.snapshot is not None
        pod_b = next(p for p in state_b.snapshot.pods if p.namespace == "shop")
        assert pod_b.usage and pod_b.usage.cpu
        assert _by_name(resp.json()) == {
            "web-node-b-api": Decimal(pod_b.usage.cpu.usage_ns) / Decimal(10**9)
        }
        assert [s for _, s in cluster.nodes["node-b"].seen] == ["node"]
        assert cluster.nodes["node-c"].seen == []

        # the API does not know web-node-c-api: every peer is asked, a 404 is no error
        cluster.api.delete_pod("shop", "web-node-c-api")
        resp = await cluster.get(
            "node-a", f"{ROOT}/namespaces/shop/pods/web-node-c-api/cpu_seconds_total"
        )
        assert resp.status_code == 200, resp.text
        assert list(_by_name(resp.json())) == ["web-node-c-api"]
        assert len(cluster.nodes["node-b"].seen) == 2 and len(cluster.nodes["node-c"].seen) == 1
        assert await cluster.metric("node-a", "runtime_insights_exporter_peer_errors_total") == {}

        # a pod nobody runs is a 404 Status, as without peers
        resp = await cluster.get("node-a", f"{ROOT}/namespaces/shop/pods/nowhere/cpu_seconds_total")
        assert resp.status_code == 404
        jsonschema.validate(resp.json(), STATUS)


async def test_failing_peers_are_counted_and_the_rest_is_served(tmp_path: Path) -> None:
    healthy = {"node-a": 3_000_000_000, "node-b": 6_000_000_000}
    async with _cluster(
        tmp_path,
        healthy,
        dead=("node-dead",),
        hanging=("node-hung",),
        malformed=("node-bad",),
        denying=("node-deny",),
    ) as cluster:
        resp = await cluster.get("node-a", f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate")
        assert resp.status_code == 200, resp.text
        jsonschema.validate(resp.json(), METRIC_VALUE_LIST)
        expected: dict[str, Decimal] = {}
        for name in healthy:
            state = cluster.nodes[name].state
            assert state is not None
            expected |= _expected_rates(state, "shop")
        assert _by_name(resp.json()) == expected
        errors = await cluster.metric("node-a", "runtime_insights_exporter_peer_errors_total")
        assert errors == {"node-dead": 1.0, "node-hung": 1.0, "node-bad": 1.0, "node-deny": 1.0}
        # the denying peer saw the request and refused it: its pods are not in the answer
        assert [s for _, s in cluster.nodes["node-deny"].seen] == ["node"]


async def test_all_peers_failing_and_no_local_match_answers_as_no_match(tmp_path: Path) -> None:
    async with _cluster(
        tmp_path, {"node-a": 3_000_000_000}, dead=("node-dead",), denying=("node-deny",)
    ) as cluster:
        path = f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate?labelSelector=app%3Dweb-node-deny"
        resp = await cluster.get("node-a", path)
        assert resp.status_code == 200
        jsonschema.validate(resp.json(), METRIC_VALUE_LIST)
        assert resp.json()["items"] == []
        resp = await cluster.get(
            "node-a", f"{ROOT}/namespaces/shop/pods/web-node-deny-api/cpu_usage_rate"
        )
        assert resp.status_code == 404
        jsonschema.validate(resp.json(), STATUS)
        # only the node that runs the selected (or named) pod was asked, twice
        errors = await cluster.metric("node-a", "runtime_insights_exporter_peer_errors_total")
        assert errors == {"node-deny": 2.0}


async def test_a_peer_without_the_expected_certificate_name_is_refused(tmp_path: Path) -> None:
    cpu = {"node-a": 3_000_000_000, "node-b": 6_000_000_000}
    async with _cluster(
        tmp_path, cpu, peer_server_name="runtime-insights.elsewhere.svc"
    ) as cluster:
        resp = await cluster.get("node-a", f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate")
        assert resp.status_code == 200
        assert set(_by_name(resp.json())) == {"web-node-a-api"}
        assert cluster.nodes["node-b"].seen == []  # the TLS handshake failed before any request
        errors = await cluster.metric("node-a", "runtime_insights_exporter_peer_errors_total")
        assert errors == {"node-b": 1.0}


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"peer_namespace": None}, "RUNTIME_INSIGHTS_PEER_NAMESPACE"),
        ({"peer_ca_file": None}, "RUNTIME_INSIGHTS_PEER_CA_FILE"),
        ({"peer_server_name": None}, "RUNTIME_INSIGHTS_PEER_SERVER_NAME"),
        ({"tls_cert_file": None, "tls_key_file": None}, "RUNTIME_INSIGHTS_TLS_CERT_FILE"),
        ({"kube_enabled": False}, "RUNTIME_INSIGHTS_KUBE_ENABLED"),
    ],
)
def test_incomplete_peer_settings_name_what_is_missing(
    tmp_path: Path, missing: dict[str, Any], named: str
) -> None:
    complete: dict[str, Any] = {
        "peers_enabled": True,
        "node_name": "node-a",
        "peer_namespace": "runtime-insights",
        "peer_ca_file": str(tmp_path / "ca.crt"),
        "peer_server_name": "runtime-insights.runtime-insights.svc",
        "tls_cert_file": str(tmp_path / "tls.crt"),
        "tls_key_file": str(tmp_path / "tls.key"),
        "kubeconfig": str(tmp_path / "no-kubeconfig"),
    }
    with pytest.raises(ValidationError, match=named):
        Settings(**(complete | missing))


def test_the_exporter_refuses_to_start_with_incomplete_peer_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"KUBE_ENABLED": "false", "PEERS_ENABLED": "true", "PORT": "0"}.items():
        monkeypatch.setenv(f"RUNTIME_INSIGHTS_{name}", value)
    with pytest.raises(StartupError, match="RUNTIME_INSIGHTS_PEER_NAMESPACE"):
        load_settings(None)


class _Source:
    """The peer source interface: answers from a list of results, one per call."""

    def __init__(self, *results: list[Peer] | PeerListError) -> None:
        self.results = list(results)
        self.calls = 0

    async def list_peers(self) -> list[Peer]:
        self.calls += 1
        result = self.results.pop(0)
        if isinstance(result, PeerListError):
            raise result
        return result

    async def node_of(self, namespace: str, pod: str) -> str | None:
        return None

    async def nodes_running(self, namespace: str, selector: str) -> set[str] | None:
        return None


async def test_peer_list_is_cached_and_survives_an_api_outage() -> None:
    now = [0.0]
    known = [Peer("runtime-insights-x", "node-b", "10.0.0.7")]
    source = _Source(PeerListError("down"), known, PeerListError("down again"))
    directory = PeerDirectory(source, ttl=30, clock=lambda: now[0])
    assert await directory.peers() == []  # nothing known yet: this node answers alone
    assert directory.list_errors == 1
    now[0] = 31
    assert await directory.peers() == known
    now[0] = 60
    assert await directory.peers() == known  # cached: no call
    assert source.calls == 2
    now[0] = 62
    assert await directory.peers() == known  # refresh failed: the old list is kept
    assert (source.calls, directory.list_errors) == (3, 2)


async def test_an_exporter_without_a_snapshot_still_serves_its_peers_pods(tmp_path: Path) -> None:
    async with _cluster(tmp_path, {"node-a": 3_000_000_000, "node-b": 5_000_000_000}) as cluster:
        state_a, state_b = cluster.nodes["node-a"].state, cluster.nodes["node-b"].state
        assert state_a is not None and state_b is not None
        state_a.reading = None  # the extractor has not answered node-a yet
        path = f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate"
        resp = await cluster.get("node-a", path)
        assert resp.status_code == 200, resp.text
        assert _by_name(resp.json()) == _expected_rates(state_b, "shop")
        resp = await cluster.get("node-a", path + "?scope=node")
        assert resp.status_code == 503
        jsonschema.validate(resp.json(), STATUS)


CPU = {"node-a": 3_000_000_000, "node-b": 6_000_000_000, "node-c": 9_000_000_000}


def _all_rates(cluster: Cluster) -> dict[str, Decimal]:
    expected: dict[str, Decimal] = {}
    for node in cluster.nodes.values():
        assert node.state is not None
        expected |= _expected_rates(node.state, "shop")
    return expected


async def test_hpa_pods_metric_through_the_aggregator_asks_only_the_selected_nodes(
    tmp_path: Path,
) -> None:
    async with _cluster(tmp_path, CPU) as cluster:
        selector = "app%20in%20(web-node-a,web-node-b)"
        path = f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate"
        resp = await cluster.via_aggregator("node-a", f"{path}?labelSelector={selector}")
        assert resp.status_code == 200, resp.text
        jsonschema.validate(resp.json(), METRIC_VALUE_LIST)
        rates = _all_rates(cluster)
        assert _by_name(resp.json()) == {n: rates[n] for n in ("web-node-a-api", "web-node-b-api")}
        assert [s for _, s in cluster.nodes["node-b"].seen] == ["node"]
        assert cluster.nodes["node-c"].seen == []  # runs none of the selected pods
        # the HPA was authorized as the front-proxy certificate vouched for it, by resource
        hpa_reviews = [r for r in cluster.api.access_reviews if r["user"] == HPA]
        assert hpa_reviews[0]["resourceAttributes"]["group"] == "custom.metrics.k8s.io"

        # the same query within node-b's snapshot interval reuses its answer
        again = await cluster.via_aggregator("node-a", f"{path}?labelSelector={selector}")
        assert _by_name(again.json()) == _by_name(resp.json())
        assert len(cluster.nodes["node-b"].seen) == 1
        assert (
            await cluster.scalar("node-a", "runtime_insights_exporter_peer_answers_reused_total")
            == 1
        )


async def test_hpa_object_metric_sums_a_deployment_across_nodes(tmp_path: Path) -> None:
    async with _cluster(tmp_path, CPU) as cluster:
        cluster.api.add_object(
            make_workload(
                "Deployment",
                "web",
                "shop",
                match_expressions=[{"key": "tier", "operator": "In", "values": ["backend"]}],
            )
        )
        for version in ("v1beta2", "v1beta1"):
            root = f"/apis/custom.metrics.k8s.io/{version}"
            path = f"{root}/namespaces/shop/deployments.apps/web/cpu_usage_rate"
            resp = await cluster.via_aggregator("node-b", path)
            assert resp.status_code == 200, resp.text
            [item] = resp.json()["items"]  # an Object metric: exactly one item
            assert item["describedObject"] == {
                "kind": "Deployment",
                "namespace": "shop",
                "name": "web",
                "apiVersion": "apps/v1",
            }
            assert parse_quantity(item["value"]) == sum(_all_rates(cluster).values())
            assert item["windowSeconds" if version == "v1beta2" else "window"] == 15
        # the namespace as the object: all of shop's pods, on every node
        resp = await cluster.via_aggregator(
            "node-c", f"{ROOT}/namespaces/shop/metrics/cpu_usage_rate"
        )
        assert resp.status_code == 200, resp.text
        [item] = resp.json()["items"]
        assert item["describedObject"] == {"kind": "Namespace", "name": "shop", "apiVersion": "v1"}
        assert parse_quantity(item["value"]) == sum(_all_rates(cluster).values())


async def test_hpa_external_metric_of_selected_pods_across_nodes(tmp_path: Path) -> None:
    async with _cluster(tmp_path, CPU) as cluster:
        path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/cpu_usage_rate"
        resp = await cluster.via_aggregator("node-c", f"{path}?labelSelector=tier%3Dbackend")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["kind"], body["apiVersion"]) == (
            "ExternalMetricValueList",
            "external.metrics.k8s.io/v1beta1",
        )
        [item] = body["items"]
        assert item["metricName"] == "cpu_usage_rate"
        assert item["metricLabels"] == {"tier": "backend"}
        assert parse_quantity(item["value"]) == sum(_all_rates(cluster).values())
        assert item["window"] == 15


async def _frames(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` event frames of an SSE stream's lines, as id + data dicts."""
    frames: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(30):
        async for line in lines:
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if fields:
                frames.append({"id": fields["id"], **json.loads(fields["data"])})
                fields = {}
                if len(frames) == count:
                    return frames
    raise AssertionError(f"the stream ended after {frames}")


async def test_one_stream_of_every_nodes_container_events(tmp_path: Path) -> None:
    async with _cluster(tmp_path, {n: CPU[n] for n in ("node-a", "node-b", "node-c")}) as cluster:
        address = cluster.nodes["node-a"].address
        url = f"https://{address}:{cluster.port}/v1/cluster/events"
        async with cluster.client.stream(
            "GET",
            url,
            params={"initial": "true", "namespace": "shop"},
            headers={"Authorization": f"Bearer {HPA_TOKEN}"},
            extensions={"sni_hostname": SERVER_NAME},
        ) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            lines = response.aiter_lines()
            initial = await _frames(lines, 3)  # web-node-X-api's container, every node
            assert {f["node"] for f in initial} == {"node-a", "node-b", "node-c"}
            assert all(f["id"] == f"{f['containerID']}/start" for f in initial)
            assert {f["namespace"] for f in initial} == {"shop"}
            cluster.api.add_pod(make_pod("late", "shop", node="node-c"))
            cluster.api.add_pod(make_pod("elsewhere", "infra", node="node-b"))  # filtered out
            [late] = await _frames(lines, 1)
            assert (late["podName"], late["node"], late["type"]) == ("late", "node-c", "start")
