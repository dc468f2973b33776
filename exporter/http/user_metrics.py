"""Metrics users define (exporter/http/definitions.py) in ``/metrics``, one gauge per pod.

Why beside the custom metrics API: the same definition should be graphable in
Prometheus and usable by the HPA, and both must show the same number; each family is
``runtime_insights_custom_<name>`` with labels ``namespace``, ``pod``, ``pod_uid``,
computed from the current node view exactly as the custom metrics API computes a pod's
value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.http.metric_defs import MetricDef
from exporter.node.views import Views

FAMILY_PREFIX = "runtime_insights_custom_"


class UserMetricsCollector(Collector):
    def __init__(self, views: Views, metrics: Sequence[MetricDef]) -> None:
        self._views = views
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        view = self._views.current()
        for metric in self._metrics:
            family = GaugeMetricFamily(
                FAMILY_PREFIX + metric.name,
                metric.description or f"user-defined: {metric.aggregation} of {metric.field}",
                labels=["namespace", "pod", "pod_uid"],
            )
            for pv in view.pods if view is not None else ():
                value = metric.pod_value(pv)
                if value is not None:
                    family.add_metric([pv.namespace, pv.name, pv.api_uid], float(value))
            yield family
