"""The unprivileged, network-facing half of runtime-insights.

Data flow: ``node`` (extractor snapshots → state → views, joined with ``kube``'s pod
reflector) → ``http`` (JSON API, Prometheus, custom metrics, insights compatibility),
``feeds`` (lifecycle events), ``meter`` (OpenMeter usage events); ``security`` guards the
HTTP surface, ``cluster`` reaches the other nodes' exporters; ``wiring`` builds all of it
once from ``settings`` and starts and stops it (``lifecycle``).

Of the extractor it imports only ``extractor.contract`` (tests/test_architecture.py
checks). Names load on first use (PEP 562), so ``exporter.kube`` can be used alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.settings import Settings
    from exporter.wiring import run_exporter

__all__ = ["Settings", "run_exporter"]
_WHERE = {"Settings": "exporter.settings", "run_exporter": "exporter.wiring"}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'exporter' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
