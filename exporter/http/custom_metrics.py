"""The custom metrics API (``custom.metrics.k8s.io/v1beta2``) for the pods of the cluster.

What the aggregator and the HPA controller call: discovery at the group-version root
(an ``APIResourceList`` with ``pods/<metric>`` entries), and
``namespaces/{ns}/pods/{name|*}/{metric}`` answered with a ``MetricValueList`` whose
values are quantity strings. Errors are ``metav1.Status`` objects, which is what the
client-go decoders in the aggregator and HPA understand.

The aggregator sends each request to one exporter behind the Service; with peers enabled
that exporter adds the other nodes' answers (`exporter.cluster.peers`), so the HPA sees all the
pods of a workload, not the share of whichever node it happened to reach.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from exporter.cluster.peers import LOCAL_SCOPE, SCOPE_PARAM, Peers
from exporter.http.errors import status_response
from exporter.kube.quantity_format import format_quantity
from exporter.kube.selectors import Selector, SelectorError, parse_selector
from exporter.node.views import NodeView, PodView, Views
from extractor.contract import rfc3339

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta2"
ROOT = f"/apis/{GROUP}/{VERSION}"


@dataclass(frozen=True)
class PodMetric:
    """One metric per pod; ``window`` tells whether the value spans two snapshots."""

    read: Callable[[PodView], float | int | None]
    window: bool = False


def _pod_cpu_seconds(pv: PodView) -> float | None:
    cpu = pv.pod.usage.cpu if pv.pod and pv.pod.usage else None
    return cpu.usage_ns / 1e9 if cpu else None


def _pod_working_set(pv: PodView) -> int | None:
    mem = pv.pod.usage.memory if pv.pod and pv.pod.usage else None
    return mem.working_set_bytes if mem else None


METRICS: dict[str, PodMetric] = {
    "cpu_usage_rate": PodMetric(lambda pv: pv.cpu_rate, window=True),
    "cpu_seconds_total": PodMetric(_pod_cpu_seconds),
    "memory_working_set_bytes": PodMetric(_pod_working_set),
    "runtime_seconds": PodMetric(lambda pv: pv.runtime_seconds),
}


def resource_list() -> dict[str, object]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{VERSION}",
        "resources": [
            {
                "name": f"pods/{name}",
                "singularName": "",
                "namespaced": True,
                "kind": "MetricValueList",
                "verbs": ["get"],
            }
            for name in METRICS
        ],
    }


def metric_values(
    view: NodeView | None,
    window_seconds: float | None,
    namespace: str,
    pod: str,
    metric_name: str,
    pods: Selector,
    series: Selector,
) -> list[dict[str, object]]:
    """The MetricValue items of this node for one pod or, with ``pod == "*"``, the selected
    pods (none before the first snapshot).

    Pod series carry no labels of their own, so a metricLabelSelector keeps them only
    when it matches an empty label set (e.g. ``foo!=bar``); it is echoed as given.
    """
    metric = METRICS[metric_name]
    items: list[dict[str, object]] = []
    if view is None or not series.matches({}):
        return items
    for pv in view.pods:
        if pv.namespace != namespace or (pod != "*" and pv.name != pod):
            continue
        if pod == "*" and not pods.matches(pv.meta.labels if pv.meta else {}):
            continue
        value = metric.read(pv)
        if value is None:
            continue
        item: dict[str, object] = {
            "describedObject": {
                "kind": "Pod",
                "namespace": pv.namespace,
                "name": pv.name,
                "apiVersion": "v1",
            },
            "metric": {"name": metric_name, "selector": series.as_label_selector()},
            "timestamp": rfc3339(view.snapshot.taken_at),
            "value": format_quantity(value),
        }
        if metric.window and window_seconds is not None:
            item["windowSeconds"] = max(1, round(window_seconds))
        items.append(item)
    return items


def merge_items(*answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per pod, the first answer winning (this node's, then peers in node order).

    A pod can be reported twice only transiently (two exporters on one node during a
    rollout); the HPA keys items by pod name, so a duplicate would be double data.
    """
    seen: set[tuple[object, object]] = set()
    merged: list[dict[str, Any]] = []
    for items in answers:
        for item in items:
            described = item["describedObject"]
            key = (described.get("namespace"), described.get("name"))
            if key not in seen:
                seen.add(key)
                merged.append(item)
    return merged


def metric_value_list(items: list[dict[str, Any]]) -> dict[str, object]:
    return {
        "kind": "MetricValueList",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {},
        "items": items,
    }


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_routes(app: web.Application, views: Views, peers: Peers | None = None) -> None:
    """The API routes; with `peers`, pod metrics cover every node of the DaemonSet.

    A request marked ``scope=node`` (what peers send each other) is answered from this
    node alone, so a fan-out never fans out again.
    """

    async def discovery(request: web.Request) -> web.Response:
        return _json(resource_list())

    async def pod_metric(request: web.Request) -> web.Response:
        ns, name, metric = (request.match_info[k] for k in ("namespace", "name", "metric"))
        if metric not in METRICS:
            return status_response(404, f"the server could not find the metric {metric} for pods")
        try:
            pods = parse_selector(request.query.get("labelSelector"))
            series = parse_selector(request.query.get("metricLabelSelector"))
        except SelectorError as e:
            return status_response(400, f"invalid selector: {e}")
        local_only = peers is None or request.query.get(SCOPE_PARAM) == LOCAL_SCOPE
        view = views.current()
        if view is None and local_only:
            return status_response(503, "no snapshot from the extractor yet")
        rates = view.reading.rates if view is not None else None
        window = rates.window_seconds if rates else None
        items = metric_values(view, window, ns, name, metric, pods, series)
        if peers is not None and not local_only and (name == "*" or not items):
            items = merge_items(items, await peers.gather(request.path, request.query, ns, name))
        if name != "*" and not items:
            return status_response(
                404, f"the server could not find the metric {metric} for pods {name}"
            )
        return _json(metric_value_list(items))

    async def unknown(request: web.Request) -> web.Response:
        return status_response(404, "the server could not find the requested resource")

    app.router.add_get(ROOT, discovery)
    app.router.add_get(ROOT + "/namespaces/{namespace}/pods/{name}/{metric}", pod_metric)
    app.router.add_route("*", ROOT + "/{tail:.*}", unknown)
