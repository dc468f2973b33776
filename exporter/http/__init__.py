"""The exporter's HTTP surface.

``app`` builds the application and its JSON routes, ``documents`` writes the
``/v1/containers`` and ``/v1/pods`` documents, ``errors`` the error bodies, ``limits`` the
request limits, ``server`` the listener that cuts slow, idle and surplus connections,
``health`` the probes, ``prometheus`` the ``/metrics`` exposition, ``custom_metrics`` the
custom metrics API for the HPA, ``insights`` insights-runtime-extractor's
``/gather_runtime_info``.
"""

from exporter.http.app import build_app
from exporter.http.errors import Refusal, status_response
from exporter.http.health import readiness
from exporter.http.limits import limits_middleware
from exporter.http.server import ConnectionLimits, GuardedSite

__all__ = [
    "ConnectionLimits",
    "GuardedSite",
    "Refusal",
    "build_app",
    "limits_middleware",
    "readiness",
    "status_response",
]
