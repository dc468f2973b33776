"""Container lifecycle feeds: start and stop events derived from successive pod versions.

The pods come from the pod reflector, or, without the API server, from the extractor's
snapshots (``runtime``); ``lifecycle`` turns successive versions of a pod into events;
``sse`` streams them as Server-Sent Events on ``GET /v1/events``.
"""

from exporter.feeds.lifecycle import ContainerEvent, diff, running
from exporter.feeds.runtime import RuntimePods

__all__ = ["ContainerEvent", "RuntimePods", "diff", "running"]
