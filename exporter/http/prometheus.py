"""Prometheus exposition: the exporter's own health, and the node's families.

The health families are a prometheus_client Collector read on each scrape (a few
samples). The per-container and per-pod families are written once per node view by
``exporter/http/exposition.py``, and the requests and limits under kube-state-metrics'
and kube-scheduler's names (``resource_exposition``) once per view beside them, so series
of containers that are gone disappear with the snapshot that dropped them and a scrape
always shows one consistent snapshot. CPU values are the kernel's cumulative counters,
so PromQL ``rate()`` over them is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.node.resources import container_resources
from exporter.node.views import NodeView, Views

PREFIX = "runtime_insights"
REFLECTOR_STATES = ("starting", "synced", "relisting", "disconnected")


KSM_LABELS = ["namespace", "pod", "uid", "container", "node", "resource", "unit"]
KSM_HELP = {
    "kube_pod_container_resource_requests": "[STABLE] The number of requested request "
    "resource by a container. It is recommended to use the kube_pod_resource_requests metric "
    "exposed by kube-scheduler instead, as it is more precise.",
    "kube_pod_container_resource_limits": "[STABLE] The number of requested limit resource "
    "by a container. It is recommended to use the kube_pod_resource_limits metric exposed by "
    "kube-scheduler instead, as it is more precise.",
    "kube_pod_init_container_resource_requests": "The number of requested request resource "
    "by an init container.",
    "kube_pod_init_container_resource_limits": "The number of requested limit resource by an "
    "init container.",
}
"""kube-state-metrics' families for containers' requests and limits (help as in its 2.x
output, tests/exporter/http/cadvisor/README.md): cpu in cores (``unit="core"``), memory in
bytes (``unit="byte"``); init containers, sidecars included, in the ``init`` families."""
POD_RESOURCE_LABELS = ["namespace", "pod", "node", "scheduler", "priority", "resource", "unit"]
POD_RESOURCE_HELP = {
    "kube_pod_resource_request": "Resources requested by workloads on the cluster, broken "
    "down by pod. This shows the resource usage the scheduler and kubelet expect per pod for "
    "resources along with the unit for the resource if any.",
    "kube_pod_resource_limit": "Resources limit for workloads on the cluster, broken down by "
    "pod. This shows the resource usage the scheduler and kubelet expect per pod for resources "
    "along with the unit for the resource if any.",
}
"""The kube-scheduler's per-pod families (``/metrics/resources``), for the pod's effective
requests and limits (``exporter.node.resources``): ``unit`` ``cores`` and ``bytes``."""


def _resource_families(view: NodeView) -> Iterator[Metric]:
    """Requests and limits of the containers and pods the API server describes."""
    families = {
        name: GaugeMetricFamily(name, doc, labels=KSM_LABELS) for name, doc in KSM_HELP.items()
    }
    pod_families = {
        name: GaugeMetricFamily(name, doc, labels=POD_RESOURCE_LABELS)
        for name, doc in POD_RESOURCE_HELP.items()
    }
    for pv in view.pods:
        meta = pv.meta
        if meta is None:
            continue
        node = meta.node or view.snapshot.node
        for c in meta.containers:
            if c.kind == "ephemeral":
                continue
            prefix = (
                "kube_pod_init_container" if c.kind in ("init", "sidecar") else "kube_pod_container"
            )
            r = container_resources(c)
            base = [meta.namespace, meta.name, meta.uid, c.name, node]
            for kind, cpu, memory in (
                ("requests", r.cpu_request_cores, r.memory_request_bytes),
                ("limits", r.cpu_limit_cores, r.memory_limit_bytes),
            ):
                family = families[f"{prefix}_resource_{kind}"]
                if cpu is not None:
                    family.add_metric([*base, "cpu", "core"], cpu)
                if memory is not None:
                    family.add_metric([*base, "memory", "byte"], memory)
        r = pv.resources
        priority = "" if meta.priority is None else str(meta.priority)
        base = [meta.namespace, meta.name, node, meta.scheduler or "", priority]
        for name, cpu, memory in (
            ("kube_pod_resource_request", r.cpu_request_cores, r.memory_request_bytes),
            ("kube_pod_resource_limit", r.cpu_limit_cores, r.memory_limit_bytes),
        ):
            if cpu is not None:
                pod_families[name].add_metric([*base, "cpu", "cores"], cpu)
            if memory is not None:
                pod_families[name].add_metric([*base, "memory", "bytes"], memory)
    yield from families.values()
    yield from pod_families.values()


class _Families(Collector):
    """One view's families, for one exposition."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


def text_of(families: Callable[[], Iterator[Metric]]) -> bytes:
    """Families as prometheus_client writes them (for answers rendered once per view)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def resource_exposition(view: NodeView) -> bytes:
    return text_of(lambda: _resource_families(view))


class NodeCollector(Collector):
    """The exporter's own health, read on every scrape."""

    def __init__(self, views: Views, kube_enabled: bool) -> None:
        self._views = views
        self._kube_enabled = kube_enabled

    def collect(self) -> Iterator[Metric]:
        state = self._views.state
        yield CounterMetricFamily(
            f"{PREFIX}_exporter_passes", "snapshot requests to the extractor", value=state.passes
        )
        yield CounterMetricFamily(
            f"{PREFIX}_exporter_pass_errors",
            "snapshot requests that failed",
            value=state.errors,
        )
        last = GaugeMetricFamily(
            f"{PREFIX}_exporter_last_success_timestamp_seconds",
            "unix time of the last snapshot received",
        )
        if state.last_success is not None:
            last.add_metric([], state.last_success)
        yield last
        reflector = self._views.reflector
        if self._kube_enabled and reflector is not None:
            states = GaugeMetricFamily(
                f"{PREFIX}_exporter_reflector_state",
                "1 for the pod reflector's current state",
                labels=["state"],
            )
            for name in REFLECTOR_STATES:
                states.add_metric([name], 1.0 if reflector.state == name else 0.0)
            yield states
            yield CounterMetricFamily(
                f"{PREFIX}_exporter_reflector_conversion_errors",
                "pod objects from the API server that could not be read, skipped",
                value=reflector.conversion_errors,
            )
            yield CounterMetricFamily(
                f"{PREFIX}_exporter_pod_events_dropped",
                "pod lifecycle events dropped for /v1/events consumers too slow to keep up",
                value=reflector.dropped_events,
            )
        view = self._views.current()
        api = GaugeMetricFamily(
            f"{PREFIX}_exporter_metadata_from_api",
            "1 when names and labels come from the API server, 0 when from the runtime",
        )
        api.add_metric([], 1.0 if view is not None and view.metadata_source == "api" else 0.0)
        yield api


def make_registry(views: Views, kube_enabled: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(views, kube_enabled))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
