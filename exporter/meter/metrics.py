"""The meter's counters on the exporter's /metrics, read from ``Meter.stats()`` per scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.meter.pipeline import Meter

PREFIX = "runtime_insights_meter"
COUNTERS = {
    "windows_closed": "metering windows closed into events",
    "events_delivered": "events OpenMeter accepted",
    "delivery_failures": "delivery rounds that ended with events still pending",
    "events_parked": "events OpenMeter refused as invalid, kept in the spool's poison/",
    "events_dropped": "undelivered events dropped because the spool was over its cap",
    "pod_windows_lost": "pods that vanished with no final reading: their last partial window",
    "counter_resets": "CPU counters that went backwards (recreated cgroups)",
    "spool_errors": "spool reads or writes that failed",
    "stale_snapshots": "snapshots not newer than the last one metered, ignored",
}


class MeterCollector(Collector):
    """Register with ``registry.register(MeterCollector(meter))``."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def collect(self) -> Iterator[Metric]:
        stats = self.meter.stats()
        for name, doc in COUNTERS.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            family.add_metric([], getattr(stats, name))
            yield family
        yield GaugeMetricFamily(
            f"{PREFIX}_events_pending", "events in the spool not yet delivered", stats.pending
        )
