"""Exact usage metering: cumulative kernel counters → per-window deltas → CloudEvents →
a durable spool → OpenMeter, each event delivered at most once to the bill.

``deltas`` (pure arithmetic) → ``accrual`` (per-pod open windows) → ``events`` (CloudEvents)
→ ``spool`` (disk) → ``client`` (HTTP); ``pipeline.Meter`` ties them together.
"""

from exporter.meter.metrics import MeterCollector
from exporter.meter.pipeline import Meter
from exporter.meter.spool import SpoolError

__all__ = ["Meter", "MeterCollector", "SpoolError"]
