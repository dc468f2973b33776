"""The peer bench's parts: the synthetic node every tool reads, the cgroup each tool runs
in (its CPU and memory are read from there), and one module per tool that starts it with
a configuration written to a temporary directory and reads back what it reported.

bench/bench_peers.py runs them; bench/README.md ("Peers: …") says how each was configured
and what it measured.
"""

from bench.peers.accounting import ToolCgroup
from bench.peers.node import PeerNode

__all__ = ["PeerNode", "ToolCgroup"]
