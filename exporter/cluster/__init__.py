"""The DaemonSet as a whole: the exporters of the other nodes.

``daemonset`` lists the DaemonSet's pods; ``peers`` asks them for their share of a
custom metric, so the HPA sees every pod of a workload; ``collect`` (the
``runtime-insights collect`` command, imported on its own so the exporter never loads
its port-forward client) merges every node's answer.
"""

from exporter.cluster.daemonset import ExporterPod, list_exporter_pods
from exporter.cluster.peers import KubePeerSource, PeerCA, PeerDirectory, Peers

__all__ = [
    "ExporterPod",
    "KubePeerSource",
    "PeerCA",
    "PeerDirectory",
    "Peers",
    "list_exporter_pods",
]
