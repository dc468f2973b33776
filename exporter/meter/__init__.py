"""Exact usage metering: cumulative kernel counters → per-window deltas → CloudEvents →
a durable spool → OpenMeter (or a file, or stdout), each event billed exactly once.

``deltas`` (pure arithmetic per poll) → ``accrual`` (per-pod open windows, ``facts`` of
their metadata) → ``billing`` (who is billed, as what) → ``events`` (CloudEvents) →
``schema`` (checked before anything is sent) → ``spool`` (disk) → ``delivery`` over
``client`` (HTTP) or ``sinks`` (file, stdout); ``pipeline.Meter`` ties them together.
``compat`` reads the environment of the collectors it replaces.
"""

from exporter.meter.metrics import MeterCollector
from exporter.meter.pipeline import Meter
from exporter.meter.spool import SpoolError

__all__ = ["Meter", "MeterCollector", "SpoolError"]
