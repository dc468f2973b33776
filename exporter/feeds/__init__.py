"""Container lifecycle feeds: start and stop events derived from the pod reflector.

``lifecycle`` turns successive versions of a pod into events; ``sse`` streams them as
Server-Sent Events on ``GET /v1/events``.
"""

from exporter.feeds.lifecycle import ContainerEvent, diff, running

__all__ = ["ContainerEvent", "diff", "running"]
