"""The node as the exporter knows it: extractor snapshots joined with pod metadata.

``source`` fetches a snapshot over the extractor's socket, ``state`` keeps the latest two
and their CPU rates, ``views`` joins them with the pod reflector into namespace → pod →
container views that every endpoint reads.
"""

from exporter.node.source import ExtractorClient, ExtractorError
from exporter.node.state import State
from exporter.node.views import ContainerView, NodeView, PodLookup, PodView, Views, prefixed_id

__all__ = [
    "ContainerView",
    "ExtractorClient",
    "ExtractorError",
    "NodeView",
    "PodLookup",
    "PodView",
    "State",
    "Views",
    "prefixed_id",
]
