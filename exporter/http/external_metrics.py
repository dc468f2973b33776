"""The external metrics API (``external.metrics.k8s.io/v1beta1``): namespace-level values.

What an HPA ``External`` metric calls: ``namespaces/{ns}/{metric}?labelSelector=…``
(k8s.io/metrics pkg/apis/external_metrics/v1beta1). Here the selector picks the
namespace's pods by their labels and the answer is one series: the metric of those pods
combined as its aggregation says, from every node (exporter/http/custom_metrics.py
gathers them), labelled with the selector's equality requirements. The HPA sums the
items (``Value``) or divides by its replicas (``AverageValue``).
"""

from __future__ import annotations

from aiohttp import web

from exporter.http.custom_metrics import (
    Catalog,
    PodMetrics,
    Unavailable,
    combined_item,
    json_response,
)
from exporter.http.errors import status_response
from exporter.kube.selectors import SelectorError, parse_selector

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
ROOT = f"/apis/{GROUP}/{VERSION}"


def resource_list(catalog: Catalog) -> dict[str, object]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{VERSION}",
        "resources": [
            {
                "name": name,
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
            for name in catalog.metrics
        ],
    }


def add_routes(app: web.Application, source: PodMetrics) -> None:
    async def discovery(request: web.Request) -> web.Response:
        return json_response(resource_list(source.catalog))

    async def external(request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["metric"]
        metric = source.catalog.get(name)
        if metric is None:
            return status_response(404, f"the server could not find the metric {name}")
        text = request.query.get("labelSelector")
        try:
            selector = parse_selector(text)
        except SelectorError as e:
            return status_response(400, f"invalid selector: {e}")
        try:
            pods = await source.items(ns, metric, "*", text, None, local_only=False)
        except Unavailable:
            return status_response(503, "no snapshot from the extractor yet")
        item = combined_item(metric, {}, pods, selector)
        if item is None:
            return status_response(404, f"no pod selected in {ns} has the metric {name}")
        labels = {r.key: r.values[0] for r in selector.requirements if r.op == "="}
        body = {
            "kind": "ExternalMetricValueList",
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {},
            "items": [
                {
                    "metricName": name,
                    "metricLabels": labels,
                    "timestamp": item["timestamp"],
                    "window": item["windowSeconds"],
                    "value": item["value"],
                }
            ],
        }
        return json_response(body)

    async def unknown(request: web.Request) -> web.Response:
        return status_response(404, "the server could not find the requested resource")

    app.router.add_get(ROOT, discovery)
    app.router.add_get(ROOT + "/namespaces/{namespace}/{metric}", external)
    app.router.add_route("*", ROOT + "/{tail:.*}", unknown)
