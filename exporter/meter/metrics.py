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
    "events_parked": "events never to be sent (invalid, or refused for long), in poison/",
    "events_invalid": "events that failed the ingest schema when built, parked",
    "events_dropped": "unreadable spool files set aside in poison/",
    "pod_windows_lost": "pods that vanished with no final reading: their last partial window",
    "pods_not_billed": "pods the billing rules leave out (namespace, selector, opt-in label)",
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
        yield GaugeMetricFamily(
            f"{PREFIX}_spool_full",
            "1 while the spool is at its cap: windows stay open until delivery makes room",
            stats.spool_full,
        )
