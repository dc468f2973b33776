"""How the exporter reaches the extractor: one unix socket, three read-only paths.

Both sides import these names from here, so the socket's protocol is written once.
"""

from __future__ import annotations

DEFAULT_SOCKET = "/run/runtime-insights/extractor.sock"
"""Where the DaemonSet's pod puts the socket (an emptyDir both containers mount)."""
SNAPSHOT_PATH = "/v1/snapshot"
"""GET: the latest Snapshot as JSON (``model.Snapshot``), its tag in ``ETag``."""
CHANGES_PATH = "/v1/snapshot/changes"
"""GET ``?since=<tag>``: the latest snapshot as a difference (``changes.Changes``)."""
SINCE_PARAM = "since"
MAX_AGE_PARAM = "max_age"
"""On both snapshot paths: seconds the snapshot's pass may have started before the
request (``changes`` module)."""
HEALTH_PATH = "/healthz"
"""GET: whether the extractor is serving, how many passes it took, its last error."""
