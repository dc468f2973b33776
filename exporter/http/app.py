"""The exporter's HTTP application: JSON API, insights-compatible endpoint, Prometheus,
custom metrics API, health and readiness.

Handlers only read the shared Views (rebuilt once per snapshot), and every answer is
rendered once per view, off the event loop, and shared (``exporter/http/rendering.py``);
the node's Prometheus families are rewritten only where a row changed
(``exporter/http/exposition.py``). A scrape storm costs almost nothing beyond the socket
work, and ``/healthz`` answers meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web import RequestPayloadError
from prometheus_client.registry import Collector

from exporter.cluster.peers import Peers
from exporter.feeds import cluster_events, sse
from exporter.feeds.sse import PodEventSource
from exporter.http import cadvisor, custom_metrics, external_metrics, health, inventory
from exporter.http import insights as insights_compat
from exporter.http.documents import container_document, pod_document, pod_use
from exporter.http.errors import Refusal, status_response
from exporter.http.exposition import NodeExposition
from exporter.http.fresh import fresh_gather
from exporter.http.metric_defs import MetricDef
from exporter.http.prometheus import exposition, make_registry, resource_exposition
from exporter.http.rendering import Rendered
from exporter.http.user_metrics import UserMetricsCollector
from exporter.kube.client import KubeClient
from exporter.kube.selectors import Selector, SelectorError, parse_selector
from exporter.meter.metrics import MeterCollector
from exporter.meter.pipeline import Meter
from exporter.node.efficiency import namespace_documents
from exporter.node.state import State
from exporter.node.views import NodeView, PodLookup, Views
from extractor.contract import rfc3339

log = logging.getLogger(__name__)

CONTAINER_FILTERS = ("namespace", "pod", "container", "labelSelector")
POD_FILTERS = ("namespace", "pod", "labelSelector")
NAMESPACE_FILTERS = ("namespace",)


class _Filters:
    """Parsed, validated query filters of /v1/containers and /v1/pods."""

    def __init__(self, request: web.Request, allowed: Sequence[str]) -> None:
        unknown = sorted(set(request.query) - set(allowed))
        if unknown:
            raise Refusal(
                400,
                f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(allowed)}",
            )
        self.namespace = request.query.get("namespace")
        self.pod = request.query.get("pod")
        self.container = request.query.get("container")
        try:
            self.selector: Selector = parse_selector(request.query.get("labelSelector"))
        except SelectorError as e:
            raise Refusal(400, f"labelSelector: {e}") from None

    def keep(
        self, namespace: str, pod: str, labels: dict[str, str], container: str | None = None
    ) -> bool:
        return (
            (self.namespace is None or namespace == self.namespace)
            and (self.pod is None or pod == self.pod)
            and (self.container is None or container == self.container)
            and self.selector.matches(labels)
        )


def _envelope(view: NodeView, key: str, items: list[dict[str, object]]) -> dict[str, object]:
    return {
        "node": view.snapshot.node,
        "takenAt": rfc3339(view.snapshot.taken_at),
        "metadataSource": view.metadata_source,
        key: items,
    }


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is JSON ``{"error": ...}``, whichever middleware or handler refused;
    a body the client broke off or mis-framed is a 400; a crash becomes a 500 whose
    traceback goes to the log, never to the client.

    It is the outermost middleware, so authentication and the limits are covered too.
    """
    try:
        return await handler(request)
    except Refusal as e:
        return e.response()
    except RequestPayloadError as e:
        return status_response(400, f"request body unreadable: {e}")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if request.match_info.http_exception is not None:
            return status_response(e.status, f"{request.method} {request.path}: {e.reason}")
        return status_response(e.status, e.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return status_response(500, "internal error; see the exporter's log")


def build_app(
    state: State,
    lookup: PodLookup | None,
    *,
    stale_after_seconds: float,
    events: PodEventSource | None = None,
    middlewares: Sequence[Middleware] = (),
    peers: Peers | None = None,
    meter: Meter | None = None,
    insights_gather: insights_compat.Gather | None = None,
    gather_max_age_seconds: float = 0.0,
    collectors: Sequence[Collector] = (),
    kube: KubeClient | None = None,
    user_metrics: Sequence[MetricDef] = (),
    api_timeout: float = 5.0,
    max_event_streams: int = sse.MAX_STREAMS,
    max_event_streams_per_client: int = sse.MAX_STREAMS_PER_CLIENT,
) -> web.Application:
    """The whole HTTP surface over one State, every route of it.

    `lookup` is the pod reflector when the API server is used (None: runtime names only);
    `events` serves the lifecycle feed from it (at most `max_event_streams` streams,
    `max_event_streams_per_client` of one client). With `peers`, custom metrics cover the
    other nodes too and /metrics counts peer calls; with `meter`, /metrics and /readyz
    report OpenMeter delivery; every one of ``collectors`` (a feed's counters) is added to
    /metrics. ``kube`` reads the objects of custom metrics (Services, Deployments…);
    ``user_metrics`` are served beside the built-in ones and in /metrics. A snapshot
    older than `stale_after_seconds` makes the exporter degraded. `insights_gather`
    replaces where /gather_runtime_info's fingerprints come from (default: the latest
    snapshot, or with `gather_max_age_seconds` a pass at most that old,
    ``exporter/http/fresh.py``).
    """
    views = Views(state, lookup)
    app = web.Application(middlewares=[json_errors, *middlewares])
    rendered = Rendered()
    node_families = NodeExposition()
    registry = make_registry(views, lookup is not None)
    if peers is not None:
        registry.register(peers.collector())
    if meter is not None:
        registry.register(MeterCollector(meter))
    for collector in collectors:
        registry.register(collector)
    if user_metrics:
        registry.register(UserMetricsCollector(views, user_metrics))

    def current() -> NodeView:
        view = views.current()
        if view is None:
            reason = state.last_error or "the extractor has not answered yet"
            raise Refusal(503, f"no snapshot from the extractor: {reason}")
        return view

    async def containers(request: web.Request) -> web.Response:
        filters = _Filters(request, CONTAINER_FILTERS)
        view = current()

        def build() -> bytes:
            devices = view.snapshot.block_devices
            items = [
                container_document(cv, devices)
                for cv in view.containers
                if filters.keep(cv.namespace, cv.pod, cv.meta.labels if cv.meta else {}, cv.name)
            ]
            return orjson.dumps(_envelope(view, "containers", items))

        return _json(await rendered.get(view, (request.path, request.query_string), build))

    async def pods(request: web.Request) -> web.Response:
        filters = _Filters(request, POD_FILTERS)
        view = current()

        def build() -> bytes:
            devices = view.snapshot.block_devices
            items = [
                pod_document(pv, (container_document(cv, devices) for cv in pv.containers), devices)
                for pv in view.pods
                if filters.keep(pv.namespace, pv.name, pv.meta.labels if pv.meta else {})
            ]
            return orjson.dumps(_envelope(view, "pods", items))

        return _json(await rendered.get(view, (request.path, request.query_string), build))

    async def namespaces(request: web.Request) -> web.Response:
        filters = _Filters(request, NAMESPACE_FILTERS)
        view = current()

        def build() -> bytes:
            uses = [pod_use(pv) for pv in view.pods if filters.keep(pv.namespace, pv.name, {})]
            return orjson.dumps(_envelope(view, "namespaces", namespace_documents(uses)))

        return _json(await rendered.get(view, (request.path, request.query_string), build))

    async def metrics(request: web.Request) -> web.Response:
        view = views.current()
        health = exposition(registry)
        if view is not None:

            def render() -> bytes:
                return node_families.render(view) + resource_exposition(view)

            health += await rendered.get(view, "/metrics", render)
        return web.Response(
            body=health, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def cadvisor_metrics(request: web.Request) -> web.Response:
        view = views.current()
        body = (
            b""
            if view is None
            else await rendered.get(view, "/metrics/cadvisor", lambda: cadvisor.render(view))
        )
        return web.Response(
            body=body,
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app.router.add_get("/v1/containers", containers)
    app.router.add_get("/v1/pods", pods)
    app.router.add_get("/v1/namespaces", namespaces)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics/cadvisor", cadvisor_metrics)
    health.add_routes(app, views, stale_after_seconds=stale_after_seconds, meter=meter)
    if insights_gather is None and gather_max_age_seconds > 0:
        insights_gather = fresh_gather(views, state, gather_max_age_seconds)
    insights_compat.add_routes(app, views, insights_gather)
    inventory.add_routes(app, views)
    pod_metrics = custom_metrics.add_routes(
        app,
        views,
        peers,
        catalog=custom_metrics.Catalog(user_metrics),
        kube=kube,
        api_timeout=api_timeout,
    )
    external_metrics.add_routes(app, pod_metrics)
    if events is not None:
        sse.add_routes(
            app,
            events,
            max_streams=max_event_streams,
            max_streams_per_client=max_event_streams_per_client,
        )
        if peers is not None:
            cluster_events.add_routes(app, events, peers)
    return app
