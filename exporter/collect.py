"""`runtime-insights collect`: every node's exporter merged into one cluster-wide document.

Why this replaces a shell loop over `kubectl exec … curl`: the exporters are reached
through the API server's pod proxy (`pods/proxy`, RBAC-controlled, no exec rights and no
network path to the pods needed), all nodes in parallel with a deadline each, and a node
that cannot answer is reported — a merged document that silently lacks a node would
under-count the cluster.

Each exporter is asked for `/v1/pods` — the richest view: pod totals from the pod cgroup
(exited containers included) plus every container with CPU, memory, runtime and
fingerprint. Output (stdout, JSON):

    {"nodes": {"ok": [node, ...], "failed": [{"node", "pod", "error"}, ...]},
     "namespaces": {ns: {pod: {..pod fields.., "node": node,
                               "containers": {containerId: {..container fields..}}}}}}

Exit status: 0 every exporter answered; 1 some failed (the document still holds the
others); 2 nothing could be collected (no credentials, API server error, no exporter pods).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import urllib3.exceptions
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from exporter.kube_config import KubeConfigError, load_api_client
from exporter.kubehttp import api_http_client

EXPORTER_PATH = "/v1/pods"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
PARALLEL_NODES = 32


class CollectError(Exception):
    """Nothing could be collected at all."""


@dataclass(frozen=True)
class ExporterPod:
    """One exporter of the DaemonSet, as the pod list shows it."""

    name: str
    node: str | None
    phase: str | None


@dataclass(frozen=True)
class NodeResult:
    pod: ExporterPod
    document: dict[str, Any] | None = None
    error: str | None = None


def list_exporter_pods(
    api: ApiClient, namespace: str, selector: str, timeout: float
) -> list[ExporterPod]:
    """The DaemonSet's pods, through the official client (kubeconfig or in-cluster)."""
    try:
        pods = CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=timeout
        )
    except ApiException as exc:
        raise CollectError(
            f"listing pods in {namespace} failed: HTTP {exc.status} {exc.reason}"
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise CollectError(f"cannot reach the API server: {exc}") from exc
    found = [
        ExporterPod(
            p.metadata.name,
            p.spec.node_name if p.spec else None,
            p.status.phase if p.status else None,
        )
        for p in pods.items
        if p.metadata is not None and p.metadata.name
    ]
    if not found:
        raise CollectError(f"no pods match {selector!r} in namespace {namespace}")
    return sorted(found, key=lambda p: (p.node or "", p.name))


def _proxy_path(namespace: str, pod: str, port: str, scheme: str) -> str:
    target = quote(f"{scheme}:{pod}:{port}", safe=":")
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{target}/proxy{EXPORTER_PATH}"


def _http_error(response: httpx.Response, body: bytes) -> str:
    message = ""
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or parsed.get("error") or "")
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ValueError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _validated(body: bytes) -> dict[str, Any]:
    """The exporter's answer, checked for the shape the merge relies on."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"response is not JSON: {exc}") from exc
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


async def fetch_node(
    client: httpx.AsyncClient,
    namespace: str,
    pod: ExporterPod,
    port: str,
    scheme: str,
    timeout: float,
) -> NodeResult:
    """One exporter's `/v1/pods` through the pod proxy, or why it could not be had."""
    if pod.phase != "Running":
        return NodeResult(pod, error=f"exporter pod is {pod.phase or 'in an unknown phase'}")
    try:
        async with asyncio.timeout(timeout):
            path = _proxy_path(namespace, pod.name, port, scheme)
            async with client.stream("GET", path) as response:
                body = await _read_capped(response)
            if response.status_code != 200:
                return NodeResult(pod, error=_http_error(response, body))
            return NodeResult(pod, document=_validated(body))
    except TimeoutError:
        return NodeResult(pod, error=f"no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return NodeResult(pod, error=f"{type(exc).__name__}: {exc}")
    except ValueError as exc:
        return NodeResult(pod, error=str(exc))


def merge(results: list[NodeResult]) -> dict[str, Any]:
    """One namespace → pod → container document, with the nodes that answered and those not."""
    namespaces: dict[str, dict[str, dict[str, Any]]] = {}
    ok: list[str] = []
    failed: list[dict[str, str | None]] = []
    for result in results:
        node = result.pod.node
        if result.document is None:
            failed.append({"node": node, "pod": result.pod.name, "error": result.error})
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
    return {"nodes": {"ok": ok, "failed": failed}, "namespaces": namespaces}


async def collect(
    cfg: Any, pods: list[ExporterPod], *, namespace: str, port: str, scheme: str, timeout: float
) -> dict[str, Any]:
    """Ask every exporter in parallel (at most PARALLEL_NODES at once) and merge."""
    gate = asyncio.Semaphore(PARALLEL_NODES)
    async with api_http_client(cfg, timeout=timeout) as client:

        async def one(pod: ExporterPod) -> NodeResult:
            async with gate:
                return await fetch_node(client, namespace, pod, port, scheme, timeout)

        results = await asyncio.gather(*(one(p) for p in pods))
    return merge(list(results))


def run_collect(args: argparse.Namespace) -> int:
    """The `collect` subcommand: prints the merged document; see the module doc for exits."""
    try:
        api = load_api_client(args.kubeconfig)
        pods = list_exporter_pods(api, args.namespace, args.selector, args.timeout)
        document = asyncio.run(
            collect(
                api.configuration,
                pods,
                namespace=args.namespace,
                port=str(args.port),
                scheme="http" if args.insecure_http else "https",
                timeout=args.timeout,
            )
        )
    except (KubeConfigError, CollectError) as exc:
        print(f"runtime-insights collect: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    for failure in document["nodes"]["failed"]:
        print(
            f"runtime-insights collect: node {failure['node']} (pod {failure['pod']}): "
            f"{failure['error']}",
            file=sys.stderr,
        )
    return 1 if document["nodes"]["failed"] else 0
