"""Prometheus exposition of the current node view, built on each scrape.

A custom Collector (instead of long-lived Gauge objects) means series of containers
that are gone disappear with the snapshot that dropped them, and a scrape always shows
one consistent snapshot. CPU values are the kernel's cumulative counters, so PromQL
``rate()`` over them is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.node.resources import container_resources
from exporter.node.views import NodeView, Views
from extractor.contract import Usage

PREFIX = "runtime_insights"
CONTAINER_LABELS = ["namespace", "pod", "container", "container_id"]
POD_LABELS = ["namespace", "pod", "pod_uid"]
REFLECTOR_STATES = ("starting", "synced", "relisting", "disconnected")


def _usage_families(
    scope: str, labels: list[str], rows: Iterable[tuple[list[str], Usage | None]]
) -> Iterator[Metric]:
    """The cgroup counters shared by containers and pods, one family per field."""
    cpu = {
        "cpu_seconds": ("usage_ns", "CPU time used, from the cgroup's cpuacct/cpu.stat"),
        "cpu_user_seconds": ("user_ns", "CPU time in user mode"),
        "cpu_system_seconds": ("system_ns", "CPU time in kernel mode"),
        "cpu_throttled_seconds": ("throttled_ns", "time throttled by the CFS quota"),
    }
    memory = {
        "memory_usage_bytes": ("current_bytes", "memory charged to the cgroup"),
        "memory_working_set_bytes": ("working_set_bytes", "usage minus inactive file cache"),
        "memory_peak_bytes": ("peak_bytes", "highest memory usage recorded by the kernel"),
        "memory_limit_bytes": ("limit_bytes", "memory limit of the cgroup"),
    }
    materialised = list(rows)
    for name, (field, doc) in cpu.items():
        counter = CounterMetricFamily(f"{PREFIX}_{scope}_{name}", doc, labels=labels)
        for values, usage in materialised:
            ns = getattr(usage.cpu, field) if usage and usage.cpu else None
            if ns is not None:
                counter.add_metric(values, ns / 1e9)
        yield counter
    for name, (field, doc) in memory.items():
        gauge = GaugeMetricFamily(f"{PREFIX}_{scope}_{name}", doc, labels=labels)
        for values, usage in materialised:
            value = getattr(usage.memory, field) if usage and usage.memory else None
            if value is not None:
                gauge.add_metric(values, value)
        yield gauge


def _container_families(view: NodeView) -> Iterator[Metric]:
    rows = [([cv.namespace, cv.pod, cv.name, cv.container.id], cv) for cv in view.containers]
    yield from _usage_families(
        "container", CONTAINER_LABELS, ((v, cv.container.usage) for v, cv in rows)
    )
    runtime = GaugeMetricFamily(
        f"{PREFIX}_container_runtime_seconds",
        "seconds since the container's first process started",
        labels=CONTAINER_LABELS,
    )
    restarts = GaugeMetricFamily(
        f"{PREFIX}_container_restarts",
        "restart count from the pod status (API metadata only)",
        labels=CONTAINER_LABELS,
    )
    info = InfoMetricFamily(
        f"{PREFIX}_container_fingerprint",
        "OS and language runtime of the container, as fingerprinted from the outside",
        labels=[*CONTAINER_LABELS, "runtime", "image", "metadata_source"],
    )
    for values, cv in rows:
        c = cv.container
        if c.runtime_seconds is not None:
            runtime.add_metric(values, c.runtime_seconds)
        if cv.status is not None:
            restarts.add_metric(values, cv.status.restart_count)
        fp = c.fingerprint
        info.add_metric(
            [
                *values,
                c.runtime,
                (cv.status.image if cv.status else None) or c.image or "",
                cv.source,
            ],
            {
                "os": (fp.os if fp else None) or "",
                "os_version": (fp.osVersion if fp else None) or "",
                "kind": (fp.kind if fp else None) or "",
                "kind_version": (fp.kindVersion if fp else None) or "",
                "kind_implementer": (fp.kindImplementer if fp else None) or "",
            },
        )
    yield runtime
    yield restarts
    yield info


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


def _pod_families(view: NodeView) -> Iterator[Metric]:
    rows = [([pv.namespace, pv.name, pv.api_uid], pv) for pv in view.pods]
    yield from _usage_families(
        "pod", POD_LABELS, ((v, pv.pod.usage if pv.pod else None) for v, pv in rows)
    )
    runtime = GaugeMetricFamily(
        f"{PREFIX}_pod_runtime_seconds", "age of the pod's oldest container", labels=POD_LABELS
    )
    for values, pv in rows:
        seconds = pv.runtime_seconds
        if seconds is not None:
            runtime.add_metric(values, seconds)
    yield runtime


class NodeCollector(Collector):
    """Reads the shared Views on every scrape; the exporter's own health comes along."""

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
        if view is None:
            return
        yield from _container_families(view)
        yield from _pod_families(view)
        yield from _resource_families(view)


def make_registry(views: Views, kube_enabled: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(views, kube_enabled))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
