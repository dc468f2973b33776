"""The DaemonSet as a whole: the exporters of the other nodes.

``peers`` asks them for their share of a custom metric, so the HPA sees every pod of a
workload; ``collect`` (the ``runtime-insights collect`` command, imported on its own so
the exporter never loads its port-forward client) merges every node's answer.
"""

from exporter.cluster.peers import PeerConfigError, Peers

__all__ = ["PeerConfigError", "Peers"]
