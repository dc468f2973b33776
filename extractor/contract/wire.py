"""How the exporter reaches the extractor: one unix socket, two read-only paths.

Both sides import these names from here, so the socket's protocol is written once.
"""

from __future__ import annotations

DEFAULT_SOCKET = "/run/runtime-insights/extractor.sock"
"""Where the DaemonSet's pod puts the socket (an emptyDir both containers mount)."""
SNAPSHOT_PATH = "/v1/snapshot"
"""GET: the latest Snapshot as JSON (``model.Snapshot``)."""
HEALTH_PATH = "/healthz"
"""GET: whether the extractor is serving, how many passes it took, its last error."""
