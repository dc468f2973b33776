"""One HPA query in a 1,000-node cluster: peer requests and latency, against today's fan-out.

The exporter the aggregation layer reaches gathers the other nodes' share of a ``Pods``
metric (exporter/cluster/peers.py). Measured with the real ``Peers`` class, its real
API client and real TLS, against 1,000 fake exporters (one aiohttp application on 1,000
loopback addresses, one port: a DaemonSet's pods) and a fake API server that lists the
DaemonSet's pods and the 10 pods of the queried Deployment, each on its own node.

- **today**: every peer is asked, every time (no node selection, nothing reused);
- **selected nodes**: only the nodes the API says run the selected pods are asked; each
  query in a new snapshot interval (answers not reusable: ``max-age=0``);
- **reused**: the same query again within the peers' snapshot interval (``max-age``).

Every scenario must return the same 10 items. Loopback only, bounded query counts.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from exporter.cluster.peers import KubePeerSource, PeerCA, PeerDirectory, Peers
from exporter.kube.client import KubeClient, TokenAuth, load_configuration

PEERS = 1000
SELECTED = 10
NAMESPACE = "shop"
DAEMONSET = "app.kubernetes.io/name=runtime-insights"
WORKLOAD = "app=web"
PATH = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{NAMESPACE}/pods/*/cpu_usage_rate"
ROUNDS = {"today": 3, "selected nodes": 7, "reused": 7}


def address(i: int) -> str:
    return f"127.77.{i // 250}.{i % 250 + 1}"


def node(i: int) -> str:
    return f"node-{i:04d}"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for ``localhost`` (the name peers verify)."""
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    crt, key, csr = directory / "tls.crt", directory / "tls.key", directory / "tls.csr"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=bench-ca",
    )
    _openssl("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return ca, crt, key


class FakeExporters:
    """1,000 peers: each answers its node's pods (the Deployment's pod on the first 10)."""

    def __init__(self) -> None:
        self.requests = 0
        self.max_age = 0
        self._by_address = {address(i): i for i in range(PEERS)}

    async def answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        local = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        i = self._by_address[local]
        items = []
        if i < SELECTED and request.query.get("labelSelector") == WORKLOAD:
            items.append(
                {
                    "describedObject": {
                        "kind": "Pod",
                        "namespace": NAMESPACE,
                        "name": f"web-{i}",
                        "apiVersion": "v1",
                    },
                    "metric": {"name": "cpu_usage_rate", "selector": {}},
                    "timestamp": "2026-12-01T10:00:00Z",
                    "windowSeconds": 10,
                    "value": f"{100 + i}m",
                }
            )
        body = {
            "kind": "MetricValueList",
            "apiVersion": "custom.metrics.k8s.io/v1beta2",
            "metadata": {},
            "items": items,
        }
        return web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": f"max-age={self.max_age}"},
        )


def pod(name: str, node_name: str, ip: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"nodeName": node_name},
        "status": {"phase": "Running", "podIP": ip},
    }


async def fake_api(request: web.Request) -> web.Response:
    """The DaemonSet's pods, or the Deployment's, by the label selector asked for."""
    selector = request.query.get("labelSelector", "")
    if selector == DAEMONSET:
        items = [pod(f"ri-{i}", node(i), address(i), {}) for i in range(PEERS + 1)]
        items[-1] = pod("ri-self", "node-self", "127.77.9.9", {})
    else:
        items = [pod(f"web-{i}", node(i), "10.0.0.1", {"app": "web"}) for i in range(SELECTED)]
    return web.Response(
        body=orjson.dumps({"kind": "PodList", "items": items}), content_type="application/json"
    )


async def serve(app: web.Application, host: str, port: int, ssl: Any = None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl, backlog=1024).start()
    return runner


async def measure(work: Path) -> dict[str, tuple[list[int], list[float]]]:
    import socket
    import ssl

    ca, crt, key = certificates(work)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    with socket.socket() as s:
        s.bind((address(0), 0))
        port = s.getsockname()[1]
    exporters = FakeExporters()
    peer_app = web.Application()
    peer_app.router.add_get("/{tail:.*}", exporters.answer)
    runner = web.AppRunner(peer_app, access_log=None)
    await runner.setup()
    for i in range(PEERS):
        await web.TCPSite(runner, address(i), port, ssl_context=context, backlog=1024).start()
    api_app = web.Application()
    api_app.router.add_get("/api/v1/namespaces/{ns}/pods", fake_api)
    api_runner = await serve(api_app, "127.0.0.1", 0)
    api_port = api_runner.addresses[0][1]
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        f"clusters: [{{name: b, cluster: {{server: 'http://127.0.0.1:{api_port}'}}}}]\n"
        "users: [{name: b, user: {token: bench}}]\n"
        "contexts: [{name: b, context: {cluster: b, user: b}}]\n"
    )
    configuration = load_configuration(str(kubeconfig))
    kube = KubeClient(configuration)
    source = KubePeerSource(kube, NAMESPACE, DAEMONSET, "node-self", timeout=10)
    peers = Peers(
        PeerDirectory(source, nodes_ttl=0),
        port=port,
        ca=PeerCA(str(ca)),
        server_name="localhost",
        auth=TokenAuth(configuration),
        timeout=10,
        fanout_timeout=120,
    )
    results: dict[str, tuple[list[int], list[float]]] = {}
    expected = None
    try:
        await peers.directory.peers()  # the peer list is cached for 30 s in both cases
        for scenario, rounds in ROUNDS.items():
            exporters.max_age = 10 if scenario == "reused" else 0
            selector = None if scenario == "today" else WORKLOAD
            if scenario == "reused":  # the interval's first query fills the reuse
                await peers.gather(
                    PATH, {"labelSelector": WORKLOAD}, NAMESPACE, "*", selector=selector
                )
            counts, seconds = [], []
            for _ in range(rounds):
                before = exporters.requests
                started = time.perf_counter()
                items = await peers.gather(
                    PATH, {"labelSelector": WORKLOAD}, NAMESPACE, "*", selector=selector
                )
                seconds.append(time.perf_counter() - started)
                counts.append(exporters.requests - before)
                names = sorted(i["describedObject"]["name"] for i in items)
                expected = expected or names
                assert names == expected and len(names) == SELECTED, (scenario, names)
            results[scenario] = (counts, seconds)
        assert not any(peers.errors.values()), peers.errors
    finally:
        await peers.aclose()
        await kube.aclose()
        await api_runner.cleanup()
        await runner.cleanup()
    return results


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ri-bench-fanout-") as work:
        results = asyncio.run(measure(Path(work)))
    load = os.getloadavg()
    base = statistics.median(results["today"][1])
    print(
        f"{PEERS} peers, a Deployment of {SELECTED} pods on {SELECTED} nodes; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("| scenario | peer requests per HPA query | median latency | ratio to today |")
    print("| --- | ---: | ---: | ---: |")
    for scenario, (counts, seconds) in results.items():
        median = statistics.median(seconds)
        print(
            f"| {scenario} | {statistics.median(counts):.0f} | {median * 1000:.1f} ms "
            f"| {median / base:.4f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
