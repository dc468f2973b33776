"""The custom metrics API (``custom.metrics.k8s.io``, v1beta2 and v1beta1) for the HPA.

What the aggregator and the HPA controller call (k8s.io/metrics
pkg/client/custom_metrics/versioned_client.go, docs/kubernetes.md):

* discovery at each group-version root: an ``APIResourceList`` with ``<resource>/<metric>``
  for every metric (built-in and user-defined, exporter/http/metric_defs.py) and every
  resource below;
* ``namespaces/{ns}/pods/{name|*}/{metric}`` — HPA ``Pods`` metrics: one item per pod;
* ``namespaces/{ns}/{services|deployments.apps|statefulsets.apps|daemonsets.apps|
  jobs.batch}/{name|*}/{metric}`` — HPA ``Object`` metrics: one item per object, the
  value of the pods it selects combined as the metric's aggregation says
  (exporter/http/objects.py reads the selector from the API server);
* ``namespaces/{ns}/metrics/{metric}`` — an ``Object`` metric on the Namespace: all its pods.

v1beta1 is served beside v1beta2 (the HPA falls back to it): the same values with its
field names (``metricName``, ``window``, a top-level ``selector``). Every item carries
its ``describedObject``, the ``timestamp`` of the snapshot it was read from (the oldest
one when pods of several nodes were combined) and ``windowSeconds``: the span between
the two snapshots for rates, 0 for instantaneous values. Errors are ``metav1.Status``
objects, which the client-go decoders in the aggregator and the HPA understand.

The aggregator sends each request to one exporter behind the Service; with peers enabled
that exporter adds the other nodes' pods (exporter/cluster/peers.py), asking only the
nodes the selected pods run on, so the HPA sees all the pods of a workload.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from exporter.cluster.peers import LOCAL_SCOPE, SCOPE_PARAM, Peers
from exporter.http.errors import status_response
from exporter.http.metric_defs import BUILTIN, MetricDef
from exporter.http.objects import (
    BY_RESOURCE,
    KINDS,
    ObjectError,
    SelectedObject,
    list_objects,
    read_object,
)
from exporter.kube.client import KubeClient
from exporter.kube.quantity import QuantityError, parse_quantity
from exporter.kube.quantity_format import format_quantity
from exporter.kube.selectors import Selector, SelectorError, parse_selector
from exporter.node.views import NodeView, Views
from extractor.contract import rfc3339

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
ROOT = f"/apis/{GROUP}/v1beta2"
"""The path peers are asked on (their answers are merged before any conversion)."""
RESOURCES = ("pods", "namespaces", *(k.resource for k in KINDS))
Item = dict[str, Any]


class Catalog:
    """Every metric served: the built-in ones, then the user's, by name."""

    def __init__(self, extra: Sequence[MetricDef] = ()) -> None:
        self.metrics: dict[str, MetricDef] = {m.name: m for m in (*BUILTIN, *extra)}

    def get(self, name: str) -> MetricDef | None:
        return self.metrics.get(name)


def resource_list(catalog: Catalog, version: str = "v1beta2") -> dict[str, object]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{version}",
        "resources": [
            {
                "name": f"{resource}/{name}",
                "singularName": "",
                "namespaced": resource != "namespaces",
                "kind": "MetricValueList",
                "verbs": ["get"],
            }
            for name in catalog.metrics
            for resource in RESOURCES
        ],
    }


def window_of(view: NodeView | None, metric: MetricDef) -> int:
    """windowSeconds of this node's values: the rate window, 0 for instantaneous ones."""
    rates = view.reading.rates if view is not None else None
    if not metric.windowed or rates is None:
        return 0
    return max(1, round(rates.window_seconds))


def metric_values(
    view: NodeView | None,
    namespace: str,
    pod: str,
    metric: MetricDef,
    pods: Selector,
    series: Selector,
) -> list[Item]:
    """This node's v1beta2 items for one pod or, with ``pod == "*"``, the selected pods
    (none before the first snapshot).

    Pod series carry no labels of their own, so a metricLabelSelector keeps them only
    when it matches an empty label set (e.g. ``foo!=bar``); it is echoed as given.
    """
    items: list[Item] = []
    if view is None or not series.matches({}):
        return items
    window = window_of(view, metric)
    for pv in view.pods:
        if pv.namespace != namespace or (pod != "*" and pv.name != pod):
            continue
        if pod == "*" and not pods.matches(pv.meta.labels if pv.meta else {}):
            continue
        value = metric.pod_value(pv)
        if value is None:
            continue
        items.append(
            {
                "describedObject": {
                    "kind": "Pod",
                    "namespace": pv.namespace,
                    "name": pv.name,
                    "apiVersion": "v1",
                },
                "metric": {"name": metric.name, "selector": series.as_label_selector()},
                "timestamp": rfc3339(view.snapshot.taken_at),
                "windowSeconds": window,
                "value": format_quantity(value),
            }
        )
    return items


def merge_items(*answers: list[Item]) -> list[Item]:
    """One item per pod, the first answer winning (this node's, then peers in node order).

    A pod can be reported twice only transiently (two exporters on one node during a
    rollout); the HPA keys items by pod name, so a duplicate would be double data.
    """
    seen: set[tuple[object, object]] = set()
    merged: list[Item] = []
    for items in answers:
        for item in items:
            described = item["describedObject"]
            key = (described.get("namespace"), described.get("name"))
            if key not in seen:
                seen.add(key)
                merged.append(item)
    return merged


def combined_item(
    metric: MetricDef, described: dict[str, object], pods: list[Item], series: Selector
) -> Item | None:
    """One item for an object or a namespace from its pods' items; None when the metric
    has no value for no pods (an average or maximum of nothing)."""
    try:
        values = [parse_quantity(i["value"]) for i in pods]
    except QuantityError:
        return None
    value = metric.combine(values)
    if value is None:
        return None
    stamps = [i["timestamp"] for i in pods]
    windows = [int(i.get("windowSeconds") or 0) for i in pods]
    return {
        "describedObject": described,
        "metric": {"name": metric.name, "selector": series.as_label_selector()},
        "timestamp": min(stamps) if stamps else rfc3339(time.time()),
        "windowSeconds": max(windows) if windows else 0,
        "value": format_quantity(value),
    }


def to_version(item: Item, version: str) -> Item:
    """A v1beta2 item as ``version`` writes it."""
    if version == "v1beta2":
        return item
    return {
        "describedObject": item["describedObject"],
        "metricName": item["metric"]["name"],
        "timestamp": item["timestamp"],
        "window": item["windowSeconds"],
        "value": item["value"],
        "selector": item["metric"]["selector"],
    }


def metric_value_list(items: list[Item], version: str = "v1beta2") -> dict[str, object]:
    return {
        "kind": "MetricValueList",
        "apiVersion": f"{GROUP}/{version}",
        "metadata": {},
        "items": [to_version(i, version) for i in items],
    }


def json_response(body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


class Unavailable(Exception):
    """No snapshot yet and nobody else to ask."""


class PodMetrics:
    """Pod items of one namespace: this node's and, with peers, every node's."""

    def __init__(self, views: Views, peers: Peers | None, catalog: Catalog) -> None:
        self.views = views
        self.peers = peers
        self.catalog = catalog

    def local_only(self, request: web.Request) -> bool:
        return self.peers is None or request.query.get(SCOPE_PARAM) == LOCAL_SCOPE

    async def items(
        self,
        namespace: str,
        metric: MetricDef,
        pod: str,
        pods: str | None,
        series: str | None,
        *,
        local_only: bool,
    ) -> list[Item]:
        """Items of ``pod`` (or ``*``: the pods ``pods`` selects); Unavailable without a
        snapshot when nobody else is asked; SelectorError for a bad selector."""
        selector, series_selector = parse_selector(pods), parse_selector(series)
        view = self.views.current()
        if view is None and local_only:
            raise Unavailable
        items = metric_values(view, namespace, pod, metric, selector, series_selector)
        if self.peers is not None and not local_only and (pod == "*" or not items):
            query = {"labelSelector": pods or "", "metricLabelSelector": series or ""}
            path = f"{ROOT}/namespaces/{namespace}/pods/{pod}/{metric.name}"
            query = {k: v for k, v in query.items() if v}
            items = merge_items(
                items, await self.peers.gather(path, query, namespace, pod, selector=pods or "")
            )
        return items

    def max_age(self) -> int:
        """Seconds until this node's next snapshot: how long a peer may reuse its answer."""
        state = self.views.state
        if state.last_success is None:
            return 0
        return max(0, int(state.last_success + state.poll_interval_seconds - time.time()))


def add_routes(
    app: web.Application,
    views: Views,
    peers: Peers | None = None,
    *,
    catalog: Catalog | None = None,
    kube: KubeClient | None = None,
    api_timeout: float = 5.0,
) -> PodMetrics:
    """The API's routes for both versions; with ``peers``, pods of every node count;
    ``kube`` reads the objects of Object metrics (without it they are 503).

    A request marked ``scope=node`` (what peers send each other) is answered from this
    node alone, so a fan-out never fans out again.
    """
    catalog = catalog or Catalog()
    source = PodMetrics(views, peers, catalog)

    def known(request: web.Request) -> MetricDef | web.Response:
        name = request.match_info["metric"]
        metric = catalog.get(name)
        if metric is None:
            return status_response(404, f"the server could not find the metric {name}")
        return metric

    def selectors(request: web.Request) -> tuple[str | None, str | None] | web.Response:
        pods, series = request.query.get("labelSelector"), request.query.get("metricLabelSelector")
        try:
            parse_selector(pods)
            parse_selector(series)
        except SelectorError as e:
            return status_response(400, f"invalid selector: {e}")
        return pods, series

    async def pod_metric(request: web.Request, version: str) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        metric, chosen = known(request), selectors(request)
        if isinstance(metric, web.Response):
            return metric
        if isinstance(chosen, web.Response):
            return chosen
        local_only = source.local_only(request)
        try:
            items = await source.items(ns, metric, name, *chosen, local_only=local_only)
        except Unavailable:
            return status_response(503, "no snapshot from the extractor yet")
        if name != "*" and not items:
            return status_response(
                404, f"the server could not find the metric {metric.name} for pods {name}"
            )
        headers = {"Cache-Control": f"max-age={source.max_age()}"} if local_only else None
        return json_response(metric_value_list(items, version), headers)

    async def combined(
        metric: MetricDef,
        namespace: str,
        described: dict[str, object],
        pods: str | None,
        series: str | None,
    ) -> Item | None:
        items = await source.items(namespace, metric, "*", pods, series, local_only=False)
        return combined_item(metric, described, items, parse_selector(series))

    async def namespace_metric(request: web.Request, version: str) -> web.Response:
        ns = request.match_info["namespace"]
        metric, chosen = known(request), selectors(request)
        if isinstance(metric, web.Response):
            return metric
        if isinstance(chosen, web.Response):
            return chosen
        described: dict[str, object] = {"kind": "Namespace", "name": ns, "apiVersion": "v1"}
        try:
            item = await combined(metric, ns, described, None, chosen[1])
        except Unavailable:
            return status_response(503, "no snapshot from the extractor yet")
        if item is None:
            return status_response(404, f"no pod of namespace {ns} has the metric {metric.name}")
        return json_response(metric_value_list([item], version))

    async def object_metric(request: web.Request, version: str) -> web.Response:
        ns, resource, name = (request.match_info[k] for k in ("namespace", "resource", "name"))
        kind = BY_RESOURCE.get(resource)
        if kind is None:
            return status_response(
                404, f"the server could not find the requested resource {resource}"
            )
        metric, chosen = known(request), selectors(request)
        if isinstance(metric, web.Response):
            return metric
        if isinstance(chosen, web.Response):
            return chosen
        if kube is None:
            return status_response(
                503, f"{kind.kind} metrics need the API server (RUNTIME_INSIGHTS_KUBE_ENABLED)"
            )
        try:
            if name == "*":
                objects = await list_objects(kube, kind, ns, chosen[0], api_timeout)
            else:
                objects = [await read_object(kube, kind, ns, name, api_timeout)]
        except ObjectError as e:
            return status_response(e.status if e.status < 500 else 503, str(e))
        items: list[Item] = []
        for obj in objects:
            item = await _object_item(obj, metric, chosen[1])
            if item is not None:
                items.append(item)
        if name != "*" and not items:
            return status_response(
                404,
                f"the server could not find the metric {metric.name} for {resource} {name}: "
                "it selects no pod that has it",
            )
        return json_response(metric_value_list(items, version))

    async def _object_item(
        obj: SelectedObject, metric: MetricDef, series: str | None
    ) -> Item | None:
        if obj.selector is None:  # selects no pods: nothing to sum, count or average
            return combined_item(metric, obj.described(), [], parse_selector(series))
        return await combined(metric, obj.namespace, obj.described(), obj.selector, series)

    async def unknown(request: web.Request) -> web.Response:
        return status_response(404, "the server could not find the requested resource")

    for version in VERSIONS:
        root = f"/apis/{GROUP}/{version}"

        async def discovery(request: web.Request, version: str = version) -> web.Response:
            return json_response(resource_list(catalog, version))

        def bound(handler: Any, version: str = version) -> Any:
            async def handle(request: web.Request) -> web.Response:
                try:
                    response: web.Response = await handler(request, version)
                except Unavailable:
                    return status_response(503, "no snapshot from the extractor yet")
                return response

            return handle

        app.router.add_get(root, discovery)
        app.router.add_get(
            root + "/namespaces/{namespace}/metrics/{metric}", bound(namespace_metric)
        )
        app.router.add_get(root + "/namespaces/{namespace}/pods/{name}/{metric}", bound(pod_metric))
        app.router.add_get(
            root + "/namespaces/{namespace}/{resource}/{name}/{metric}", bound(object_metric)
        )
        app.router.add_route("*", root + "/{tail:.*}", unknown)
    return source
