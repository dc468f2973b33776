"""``make demo``: the whole system on one machine, in under two minutes (needs root).

A private containerd (tests/support/containerd.py) runs sample workloads as kubelet-shaped
pods: a Go server, a Java program, a Python server, a short-lived job and a
crash-looping container (``workloads``). The real extractor and exporter run as
processes, the in-repo fake API server (tests/support/apiserver/) describes the pods
(labels, owners, ``openmeter.io/subject``), usage events go to the local events file;
``report`` prints what the exporter answers and the events written, and checks them, so
CI can run the demo as a smoke test. Everything it started is stopped at the end.
"""

__all__: list[str] = []
