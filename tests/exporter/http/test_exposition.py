"""The node's families as exposition.NodeExposition writes them are byte for byte what
prometheus_client's generate_latest writes for the same families (built here with the
library's own Metric families, the reference), and a new view rewrites only the rows
whose objects changed."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.http.exposition import USAGE, NodeExposition
from exporter.node.state import State
from exporter.node.views import NodeView, Views
from extractor.contract import Container, Snapshot, Usage
from tests.support.exporter_doubles import FakeLookup, api_meta_for, standard_snapshot, usage

T0 = 1_700_000_000.0
LABELS = ["namespace", "pod", "container", "container_id"]
POD_LABELS = ["namespace", "pod", "pod_uid"]


class Reference(Collector):
    """The families built with prometheus_client, field by field."""

    def __init__(self, view: NodeView) -> None:
        self.view = view

    def _usage(
        self, scope: str, labels: list[str], rows: list[tuple[list[str], Usage | None]]
    ) -> Iterator[Metric]:
        for name, kind, doc, read in USAGE:
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_type(f"runtime_insights_{scope}_{name}", doc, labels=labels)
            for values, u in rows:
                value = read(u) if u is not None else None
                if value is not None:
                    family.add_metric(values, value)
            yield family

    def collect(self) -> Iterator[Metric]:
        view = self.view
        rows = [([cv.namespace, cv.pod, cv.name, cv.container.id], cv) for cv in view.containers]
        yield from self._usage("container", LABELS, [(v, cv.container.usage) for v, cv in rows])
        runtime = GaugeMetricFamily(
            "runtime_insights_container_runtime_seconds",
            "seconds since the container's first process started",
            labels=LABELS,
        )
        restarts = GaugeMetricFamily(
            "runtime_insights_container_restarts",
            "restart count from the pod status (API metadata only)",
            labels=LABELS,
        )
        info = InfoMetricFamily(
            "runtime_insights_container_fingerprint",
            "OS and language runtime of the container, as fingerprinted from the outside",
            labels=[*LABELS, "runtime", "image", "metadata_source"],
        )
        for values, cv in rows:
            c, fp = cv.container, cv.container.fingerprint
            if c.runtime_seconds is not None:
                runtime.add_metric(values, c.runtime_seconds)
            if cv.status is not None:
                restarts.add_metric(values, cv.status.restart_count)
            image = (cv.status.image if cv.status else None) or c.image or ""
            info.add_metric(
                [*values, c.runtime, image, cv.source],
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
        pods = [([pv.namespace, pv.name, pv.api_uid], pv) for pv in self.view.pods]
        yield from self._usage(
            "pod", POD_LABELS, [(v, pv.pod.usage if pv.pod else None) for v, pv in pods]
        )
        pod_runtime = GaugeMetricFamily(
            "runtime_insights_pod_runtime_seconds",
            "age of the pod's oldest container",
            labels=POD_LABELS,
        )
        for values, pv in pods:
            if pv.runtime_seconds is not None:
                pod_runtime.add_metric(values, pv.runtime_seconds)
        yield pod_runtime


def reference(view: NodeView) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(view))
    return generate_latest(registry)


def awkward(snap: Snapshot) -> Snapshot:
    """Runtime names with a quote, a backslash and a newline; a container without
    counters; memory without a limit; a pod without its own cgroup."""
    first, second = snap.containers[1], snap.containers[2]
    odd = first.model_copy(update={"name": 'we"ird\\name\nline', "namespace": "ns\\x"})
    bare = second.model_copy(update={"usage": None, "fingerprint": None})
    pods = [snap.pods[0], snap.pods[1].model_copy(update={"usage": None})]
    containers = [snap.containers[0], odd, bare, *snap.containers[3:]]
    return snap.model_copy(update={"containers": containers, "pods": pods})


def test_runtime_names_match_the_library_byte_for_byte() -> None:
    state = State()
    state.record(awkward(standard_snapshot(T0)))
    view = Views(state, None).current()
    assert view is not None
    assert NodeExposition().render(view) == reference(view)


def test_api_names_and_statuses_match_the_library_byte_for_byte() -> None:
    state = State()
    snap = standard_snapshot(T0)
    state.record(snap)
    view = Views(state, FakeLookup(api_meta_for(snap))).current()
    assert view is not None
    assert NodeExposition().render(view) == reference(view)


def test_a_new_view_rewrites_only_the_rows_that_changed() -> None:
    state = State()
    snap = standard_snapshot(T0)
    state.record(snap)
    views = Views(state, None)
    families = NodeExposition()
    first = views.current()
    assert first is not None
    families.render(first)
    assert families.rewritten == len(first.containers) + len(first.pods)
    # the next snapshot as a difference hands back the very objects of unchanged records
    busy = snap.containers[1]
    moved: list[Container] = [
        c.model_copy(update={"runtime_seconds": (c.runtime_seconds or 0) + 10})
        for c in snap.containers
    ]
    moved[1] = moved[1].model_copy(update={"usage": usage(busy.usage.cgroup, 9, 9)})  # type: ignore[union-attr]
    state.record(snap.model_copy(update={"taken_at": T0 + 10, "containers": moved}))
    second = views.current()
    assert second is not None and second is not first
    body = families.render(second)
    assert families.rewritten == 1
    assert body == reference(second)
