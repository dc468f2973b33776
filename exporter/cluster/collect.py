"""`runtime-insights collect`: every node's exporter merged into one cluster-wide document.

Why this replaces a shell loop over `kubectl exec … curl`: the exporters are reached
through the API server (RBAC-controlled, no exec rights and no network path to the pods
needed), all nodes in parallel with a deadline each, and a node that cannot answer is
reported — a merged document that silently lacks a node would under-count the cluster.
For the same reason the nodes themselves are listed: a schedulable Linux node (the
DaemonSet's nodeSelector) without any exporter pod — taint not tolerated, admission
refused — is reported as failed too. Cordoned nodes are not expected to have one.

Two ways through the API server (`--via`):

* `port-forward` (default): a tunnel per exporter (`pods/portforward`, see
  `exporter.kube.portforward`); TLS and the caller's bearer token reach the exporter, so it
  works with the exporters' authentication on, as the manifests deploy them.
* `proxy`: the pod proxy (`pods/proxy`). The API server strips the caller's token before
  proxying, so this only works against exporters with authentication off.

Each exporter is asked for `/v1/pods` — the richest view: pod totals from the pod cgroup
(exited containers included) plus every container with CPU, memory, runtime and
fingerprint. Output (stdout, JSON):

    {"nodes": {"ok": [node, ...], "failed": [{"node", "pod", "error"}, ...]},
     "namespaces": {ns: {pod: {..pod fields.., "node": node,
                               "containers": {containerId: {..container fields..}}}}},
     "totals": [{"namespace", "pods", "cpu", "memory", "owners": [...]}, ...]}

``totals`` adds the pods of every node up per namespace and per owner, as each
exporter's ``/v1/namespaces`` does for its node: usage, requests, limits, efficiency,
billable and idle (``exporter.node.efficiency``).

(`pod` is null for a node without an exporter pod; `failed` is sorted by node.)

`--format insights` asks each exporter for `/gather_runtime_info?hash=false` instead and
prints what insights-runtime-extractor's scripts/extract.sh writes for the same cluster
(exporter/cluster/insights_format.py); `--report` turns the nodes' `/v1/pods` into the
runtime inventory (exporter/inventory/), as a table, JSON or CSV.

Exit status: 0 every expected node answered; 1 some failed (the document still holds the
others); 2 nothing could be collected (no credentials, API server error, no exporter pods,
nodes not listable) or the options contradict each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import kubernetes.client
import orjson

from exporter.cluster import insights_format
from exporter.cluster.daemonset import ExporterPod
from exporter.cluster.daemonset import list_exporter_pods as list_daemonset_pods
from exporter.inventory import build_inventory, from_pods_document, table, to_csv
from exporter.kube.client import (
    ApiError,
    KubeClient,
    KubeConfigError,
    load_configuration,
    read_capped,
)
from exporter.kube.portforward import (
    TlsTarget,
    TunnelError,
    get_through_portforward,
    status_message,
)
from exporter.node.efficiency import PodUse, Use, namespace_documents
from exporter.node.resources import Resources

EXPORTER_PATH = "/v1/pods"
INSIGHTS_PATH = "/gather_runtime_info"
INSIGHTS_QUERY = (("hash", "false"),)
"""What scripts/extract.sh asks each exporter for: clear text."""
DOCUMENT_FORMATS = ("json", "insights")
REPORT_FORMATS = ("table", "json", "csv")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
PARALLEL_NODES = 32
SERVICE_NAME = "runtime-insights"
"""The exporters' Service (manifests/base/service.yaml): its DNS name is on their certificate."""
LINUX_NODES = "kubernetes.io/os=linux"
"""The DaemonSet's nodeSelector (manifests/base/daemonset.yaml): where exporters belong."""
NODES_ROLE = "runtime-insights-collector-nodes"
"""The ClusterRole (manifests/base/rbac.yaml) that lets the caller list nodes."""
NO_EXPORTER = "no runtime-insights pod on this node"

T = TypeVar("T")


class CollectError(Exception):
    """Nothing could be collected at all."""


@dataclass(frozen=True)
class NodeResult:
    pod: ExporterPod
    document: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class CollectOptions:
    """How to reach the exporters; see the `collect` arguments in `runtime_insights.cli`."""

    namespace: str
    port: str
    via: str = "port-forward"
    insecure_http: bool = False
    timeout: float = 30.0
    ca_file: str | None = None
    tls_server_name: str | None = None
    path: str = EXPORTER_PATH
    query: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        """The exporter path with its query, as it goes on the request line."""
        return self.path + ("?" + urlencode(self.query) if self.query else "")

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    def tls(self) -> TlsTarget | None:
        """What the exporter's certificate must satisfy (None: plain HTTP in the tunnel)."""
        if self.insecure_http:
            return None
        name = self.tls_server_name or f"{SERVICE_NAME}.{self.namespace}.svc"
        try:
            return TlsTarget.load(self.ca_file, name)
        except TunnelError as exc:
            raise CollectError(str(exc)) from exc


async def list_exporter_pods(
    client: KubeClient, namespace: str, selector: str, timeout: float
) -> list[ExporterPod]:
    """The DaemonSet's pods; CollectError when there are none or the API says no."""
    try:
        found = await list_daemonset_pods(client, namespace, selector, timeout=timeout)
    except ApiError as exc:
        raise CollectError(
            f"listing pods in {namespace} failed: HTTP {exc.status} {exc.reason}"
        ) from exc
    except httpx.HTTPError as exc:
        raise CollectError(f"cannot reach the API server: {exc}") from exc
    if not found:
        raise CollectError(f"no pods match {selector!r} in namespace {namespace}")
    return found


async def list_expected_nodes(client: KubeClient, timeout: float) -> list[str]:
    """The schedulable Linux nodes: every one should run an exporter.

    Cordoned nodes (`spec.unschedulable`) are left out: they are being drained or
    repaired, and their workloads with them.
    """
    try:
        listed = await client.get_json(
            "/api/v1/nodes", [("labelSelector", LINUX_NODES)], timeout=timeout
        )
    except ApiError as exc:
        hint = (
            f" (bind the {NODES_ROLE} ClusterRole to the caller with a ClusterRoleBinding)"
            if exc.status == 403
            else ""
        )
        raise CollectError(f"listing nodes failed: HTTP {exc.status} {exc.reason}{hint}") from exc
    except httpx.HTTPError as exc:
        raise CollectError(f"cannot reach the API server: {exc}") from exc
    except ValueError as exc:
        raise CollectError(f"the API server's node list is not JSON: {exc}") from exc
    items = listed.get("items") if isinstance(listed, dict) else None
    names: list[str] = []
    for node in items if isinstance(items, list) else []:
        if not isinstance(node, dict):
            continue
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        if meta.get("name") and spec.get("unschedulable") is not True:
            names.append(str(meta["name"]))
    return sorted(names)


def port_number(pod: ExporterPod, port: str) -> int:
    """`--port` as a number: taken as is, or a container port name looked up in the pod spec.

    Port-forward takes numbers only (the API server does not resolve names for it), so a
    name is resolved here, as `kubectl port-forward` does.
    """
    if port.isdigit():
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(f"port {port} is out of range")
        return number
    for name, number in pod.ports:
        if name == port:
            return number
    declared = ", ".join(f"{n}={p}" for n, p in pod.ports) or "none"
    raise ValueError(f"pod has no container port named {port!r} (named ports: {declared})")


def _proxy_path(namespace: str, pod: str, port: str, scheme: str, path: str) -> str:
    target = quote(f"{scheme}:{pod}:{port}", safe=":")
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{target}/proxy{path}"


_UNAUTHORIZED_HINTS = {
    "proxy": "the API server's pod proxy does not pass your token on: exporters with "
    "authentication on need --via port-forward",
    "port-forward": "the exporter did not accept the kubeconfig's bearer token",
    "port-forward without token": "the kubeconfig's user has no bearer token, and the "
    "exporters authenticate callers by token only",
}


def _http_error(status: int, body: bytes, via: str) -> str:
    """The exporter's error answer, with what to do about the ones a user can fix."""
    message = status_message(body)
    text = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 401:
        text += f" ({_UNAUTHORIZED_HINTS[via]})"
    elif status == 403:
        text += " (bind the runtime-insights-reader ClusterRole to the caller)"
    return text


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"response is not JSON: {exc}") from exc


def _validated_insights(body: bytes) -> dict[str, Any]:
    """A `/gather_runtime_info` answer: namespace → pod → container id → fields."""
    doc = _json(body)
    if not (
        isinstance(doc, dict)
        and all(isinstance(pods, dict) for pods in doc.values())
        and all(
            isinstance(ctrs, dict) and all(isinstance(c, dict) for c in ctrs.values())
            for pods in doc.values()
            for ctrs in pods.values()
        )
    ):
        raise ValueError("response is not a namespace → pod → container map")
    return doc


def _validated(body: bytes) -> dict[str, Any]:
    """The exporter's answer, checked for the shape the merge relies on."""
    doc = _json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("pods"), list):
        raise ValueError("response has no 'pods' list")
    for pod in doc["pods"]:
        if not (
            isinstance(pod, dict)
            and isinstance(pod.get("namespace"), str)
            and isinstance(pod.get("pod"), str)
            and isinstance(pod.get("containers", []), list)
            and all(isinstance(c, dict) for c in pod.get("containers", []))
        ):
            raise ValueError("response has a malformed pod entry")
    return doc


def _answered(
    pod: ExporterPod, status: int, body: bytes, via: str, path: str = EXPORTER_PATH
) -> NodeResult:
    if status != 200:
        return NodeResult(pod, error=_http_error(status, body, via))
    try:
        check = _validated_insights if path == INSIGHTS_PATH else _validated
        return NodeResult(pod, document=check(body))
    except ValueError as exc:
        return NodeResult(pod, error=str(exc))


async def fetch_node(client: KubeClient, pod: ExporterPod, options: CollectOptions) -> NodeResult:
    """One exporter's answer through the pod proxy, or why it could not be had."""
    timeout = options.timeout
    try:
        async with asyncio.timeout(timeout):
            path = _proxy_path(
                options.namespace, pod.name, options.port, options.scheme, options.path
            )
            async with client.stream(path, options.query, allow_errors=True) as response:
                body = await read_capped(response, MAX_RESPONSE_BYTES)
    except TimeoutError:
        return NodeResult(pod, error=f"no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return NodeResult(pod, error=f"{type(exc).__name__}: {exc}")
    except ValueError as exc:
        return NodeResult(pod, error=str(exc))
    return _answered(pod, response.status_code, body, "proxy", options.path)


def _settle(future: asyncio.Future[T], value: T | None, error: BaseException | None) -> None:
    if future.done():  # the awaiting task gave up (deadline): nobody wants the outcome
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]


async def _in_daemon_thread(call: Callable[[], T]) -> T:
    """Runs a blocking call in a daemon thread and awaits its outcome.

    Why not `asyncio.to_thread`: executor threads are joined at exit, and the official
    client's WebSocket handshake has no timeout, so one API server that never answers
    would hold the command past its deadline; a daemon thread cannot.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = call()
        except BaseException as exc:  # handed over to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, value, error)

    threading.Thread(target=run, name="collect-node", daemon=True).start()
    return await future


@dataclass(frozen=True)
class Tunnel:
    """What every port-forward needs: the credentials, the caller's token, the TLS check."""

    configuration: kubernetes.client.Configuration
    authorization: str | None
    tls: TlsTarget | None


async def fetch_node_forwarded(
    tunnel: Tunnel, pod: ExporterPod, options: CollectOptions
) -> NodeResult:
    """One exporter's answer through a port-forward tunnel, or why it could not be had."""
    try:
        port = port_number(pod, options.port)
    except ValueError as exc:
        return NodeResult(pod, error=str(exc))

    def get() -> tuple[int, bytes]:
        # The official client speaks the port-forward websocket; one per thread, since its
        # stream support patches the client it is given.
        with kubernetes.client.ApiClient(tunnel.configuration) as own:
            answer = get_through_portforward(
                own,
                options.namespace,
                pod.name,
                port,
                options.target,
                authorization=tunnel.authorization,
                tls=tunnel.tls,
                timeout=options.timeout,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        return answer.status, answer.body

    try:
        async with asyncio.timeout(options.timeout):
            status, body = await _in_daemon_thread(get)
    except TimeoutError:
        return NodeResult(pod, error=f"no answer within {options.timeout:g}s")
    except TunnelError as exc:
        return NodeResult(pod, error=str(exc))
    via = "port-forward" if tunnel.authorization else "port-forward without token"
    return _answered(pod, status, body, via, options.path)


def merge(results: list[NodeResult], missing: Sequence[str] = ()) -> dict[str, Any]:
    """One namespace → pod → container document, with the nodes that answered and those
    not: exporters that failed, and the `missing` nodes that have no exporter at all."""
    namespaces: dict[str, dict[str, dict[str, Any]]] = {}
    ok: list[str] = []
    for result in results:
        node = result.pod.node
        if result.document is None:
            continue
        node = node or result.document.get("node")
        ok.append(str(node))
        for pod in result.document["pods"]:
            fields = {k: v for k, v in pod.items() if k not in ("namespace", "pod", "containers")}
            entry = namespaces.setdefault(pod["namespace"], {}).setdefault(
                pod["pod"], {**fields, "node": node, "containers": {}}
            )
            for container in pod.get("containers", []):
                key = str(container.get("containerId") or container.get("container"))
                entry["containers"][key] = {
                    k: v for k, v in container.items() if k not in ("namespace", "pod")
                }
    uses = [
        _pod_use(pod) for result in results if result.document for pod in result.document["pods"]
    ]
    return {
        "nodes": {"ok": ok, "failed": failures(results, missing)},
        "namespaces": namespaces,
        "totals": namespace_documents(uses),
    }


def _number(doc: Any, *path: str) -> float | None:
    """The number at ``path`` in a pod document, None where an exporter left it out."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return float(doc) if isinstance(doc, int | float) and not isinstance(doc, bool) else None


def _pod_use(pod: dict[str, Any]) -> PodUse:
    """A pod document's use and requests, read back (exporter/http/documents.py)."""
    owner = pod.get("owner") if isinstance(pod.get("owner"), dict) else {}
    memory = _number(pod, "memory", "workingSetBytes")
    mem_request = _number(pod, "resources", "requests", "memoryBytes")
    mem_limit = _number(pod, "resources", "limits", "memoryBytes")
    return PodUse(
        namespace=str(pod["namespace"]),
        owner_kind=owner.get("kind") if owner else None,
        owner_name=owner.get("name") if owner else None,
        use=Use(
            cpu_cores=_number(pod, "cpu", "usageRateCores"),
            memory_bytes=None if memory is None else int(memory),
            resources=Resources(
                cpu_request_cores=_number(pod, "resources", "requests", "cpuCores"),
                cpu_limit_cores=_number(pod, "resources", "limits", "cpuCores"),
                memory_request_bytes=None if mem_request is None else int(mem_request),
                memory_limit_bytes=None if mem_limit is None else int(mem_limit),
            ),
        ),
    )


@dataclass(frozen=True)
class Gathered:
    """Every exporter's answer (or failure), and the expected nodes without an exporter."""

    results: list[NodeResult]
    missing: list[str]


async def gather(
    client: KubeClient,
    pods: list[ExporterPod],
    options: CollectOptions,
    nodes: Sequence[str] = (),
) -> Gathered:
    """Ask every exporter in parallel (at most PARALLEL_NODES at once); each of the
    expected `nodes` without an exporter pod is listed as missing."""
    gate = asyncio.Semaphore(PARALLEL_NODES)
    cfg = client.configuration
    # The token is resolved once, here: the official loaders refresh an expiring one in
    # this call, which is not meant to run in many threads at once.
    tunnel = Tunnel(
        cfg,
        cfg.get_api_key_with_prefix("BearerToken", alias="authorization"),
        options.tls() if options.via == "port-forward" else None,
    )

    async def one(pod: ExporterPod) -> NodeResult:
        if pod.phase != "Running":
            return NodeResult(pod, error=f"exporter pod is {pod.phase or 'in an unknown phase'}")
        async with gate:
            if options.via == "proxy":
                return await fetch_node(client, pod, options)
            return await fetch_node_forwarded(tunnel, pod, options)

    results = await asyncio.gather(*(one(p) for p in pods))
    covered = {p.node for p in pods}
    return Gathered(list(results), [n for n in nodes if n not in covered])


async def collect(
    client: KubeClient,
    pods: list[ExporterPod],
    options: CollectOptions,
    nodes: Sequence[str] = (),
) -> dict[str, Any]:
    """Every exporter's `/v1/pods`, merged (see ``gather`` and ``merge``)."""
    found = await gather(client, pods, options, nodes)
    return merge(found.results, found.missing)


async def _gather_all(args: argparse.Namespace, options: CollectOptions) -> Gathered:
    client = KubeClient(load_configuration(args.kubeconfig), timeout=options.timeout)
    try:
        pods = await list_exporter_pods(client, args.namespace, args.selector, args.timeout)
        nodes = await list_expected_nodes(client, args.timeout)
        return await gather(client, pods, options, nodes)
    finally:
        await client.aclose()


def failures(results: Sequence[NodeResult], missing: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The nodes that did not answer, sorted by node: failed exporters and the `missing`
    nodes with none."""
    failed: list[dict[str, Any]] = [
        {"node": node, "pod": None, "error": NO_EXPORTER} for node in missing
    ]
    failed += [
        {"node": r.pod.node, "pod": r.pod.name, "error": r.error}
        for r in results
        if r.document is None
    ]
    return sorted(failed, key=lambda f: (f["node"] or "", f["pod"] or ""))


def _output(args: argparse.Namespace, fmt: str, found: Gathered) -> str:
    if fmt == "insights":
        return insights_format.render((r.pod.name, r.document) for r in found.results)
    if not args.report:
        document = merge(found.results, found.missing)
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    nodes = [
        from_pods_document(r.pod.node or str(r.document.get("node")), r.document)
        for r in found.results
        if r.document is not None
    ]
    report = build_inventory(nodes, failures(found.results, found.missing), now=time.time())
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    return to_csv(report) if fmt == "csv" else table(report)


def run_collect(args: argparse.Namespace) -> int:
    """The `collect` subcommand: prints the merged document, extract.sh's array or the
    inventory; see the module doc for exits."""
    fmt = args.format or ("table" if args.report else "json")
    allowed = REPORT_FORMATS if args.report else DOCUMENT_FORMATS
    if fmt not in allowed:
        mode = "with" if args.report else "without"
        print(
            f"runtime-insights collect: --format {fmt} {mode} --report: "
            f"use one of {', '.join(allowed)}",
            file=sys.stderr,
        )
        return 2
    insights = fmt == "insights"
    options = CollectOptions(
        namespace=args.namespace,
        port=str(args.port),
        via=args.via,
        insecure_http=args.insecure_http,
        timeout=args.timeout,
        ca_file=args.ca_file,
        tls_server_name=args.tls_server_name,
        path=INSIGHTS_PATH if insights else EXPORTER_PATH,
        query=INSIGHTS_QUERY if insights else (),
    )
    try:
        found = asyncio.run(_gather_all(args, options))
    except (KubeConfigError, CollectError) as exc:
        print(f"runtime-insights collect: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(_output(args, fmt, found))
    failed = failures(found.results, found.missing)
    for failure in failed:
        pod = f" (pod {failure['pod']})" if failure["pod"] else ""
        print(
            f"runtime-insights collect: node {failure['node']}{pod}: {failure['error']}",
            file=sys.stderr,
        )
    return 1 if failed else 0
