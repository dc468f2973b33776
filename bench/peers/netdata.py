"""netdata 1.37 (Debian's package) with its cgroups plugin alone, every 10 s.

The daemon runs in the node's namespaces (bench/peers/node.py) from a configuration
written here: every other internal plugin and every external one off, health, the
registry, statsd and the anonymous statistics off, its round-robin database in memory
(``mode = ram``: no disk writes to pay for), its API on a unix socket, and in a network
namespace of its own (``unshare -n``), so that it opens no port and its k8s name
script's lookups (a cloud metadata server, kubectl) reach nothing.
On this hybrid node the plugin must read the v1 hierarchies (``use unified cgroups =
no``; on ``auto`` it picks the cgroup2 one, which holds no memory controller here). It
looks for new cgroups every 10 s, as the agent and PCP do on every sample (netdata's own
default at this interval would be every 100 s), and it charts the node's containers
only, not the bench's cgroups beside them. (Each new cgroup it charts costs netdata two
scripts, its name and its network interfaces: seeing the cgroups other work on this
machine keeps creating, in a first run outside the node's namespaces, made that most of
its cost, 23x the agent's at load average 35-80.) It reads CPU (``cpuacct.stat`` and
throttling) and memory (``memory.stat``, usage) per container; per-core CPU and block
I/O off, as neither the agent nor PCP's configuration here reads them. It charts app
containers only: a container whose single process is named ``pause`` is a sandbox to
its name script, which disables it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx

from bench.peers.accounting import ToolCgroup
from bench.peers.node import PeerNode
from bench.peers.tool import INTERVAL, Reading, check_alive

CONFIG = """\
[global]
    run as user = root
    hostname = ri-bench
[db]
    update every = {interval}
    mode = ram
[directories]
    config = {dir}
    cache = {dir}/cache
    lib = {dir}/lib
    log = {dir}/log
    health config = {dir}/health.d
[logs]
    access = none
    debug = none
[web]
    bind to = unix:{dir}/netdata.sock
[health]
    enabled = no
[registry]
    enabled = no
[statsd]
    enabled = no
[plugins]
    enable running new plugins = no
    proc = no
    timex = no
    idlejitter = no
    netdata monitoring = no
    tc = no
    diskspace = no
    statsd = no
    cgroups = yes
[plugin:cgroups]
    update every = {interval}
    check for new cgroups every = {interval}
    use unified cgroups = no
    enable by default cgroups matching = */kubepods/*/pod*/* !*
    max cgroups to allow = 10000
    enable cpuacct stat (total CPU) = yes
    enable cpuacct usage (per core CPU) = no
    enable cpuacct cpu throttling = yes
    enable memory = yes
    enable blkio bandwidth = no
    enable blkio operations = no
    enable blkio throttle bandwidth = no
    enable blkio throttle operations = no
    enable blkio queued operations = no
    enable blkio merged operations = no
"""


def available() -> bool:
    return shutil.which("netdata") is not None and shutil.which("unshare") is not None


class Netdata:
    name = "netdata"
    lag = float(INTERVAL)  # a point holds the 10 s before its timestamp

    def __init__(self, node: PeerNode, scratch: Path) -> None:
        self._node = node
        self._dir = scratch / "netdata"
        for sub in ("cache", "lib", "log", "health.d"):
            (self._dir / sub).mkdir(parents=True)
        self.cgroup = node.tool_cgroup("netdata")
        self.cgroups: list[ToolCgroup] = [self.cgroup]
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self._dir / "netdata.sock")),
            base_url="http://netdata",
            timeout=30,
        )
        self._started = 0
        self._burner_chart: str | None = None
        self.foreign = 0
        """CPU charts of cgroups that are not the node's: must stay 0, else netdata pays
        for other work on this machine (bench/peers/node.py keeps it out)."""

    def start(self) -> None:
        conf = self._dir / "netdata.conf"
        conf.write_text(CONFIG.format(interval=INTERVAL, dir=self._dir))
        self._started = int(time.time())
        self._node.spawn(
            self.cgroup.path,
            ["unshare", "-n", "netdata", "-D", "-c", str(conf)],
            log=self._dir / "log" / "stdout.log",
            env=dict(os.environ) | {"DO_NOT_TRACK": "1"},  # no anonymous statistics script
            cwd=self._dir,
        )
        self._node.sync()

    def _charts(self) -> list[str]:
        check_alive(self, self._dir / "log")
        try:
            r = self._client.get("/api/v1/charts")
        except httpx.HTTPError:
            return []
        return list(r.json()["charts"]) if r.status_code == 200 else []

    def expected(self) -> int:
        return len(self._node.app_ids)

    def seen(self) -> int:
        """App containers with a CPU chart (``cgroup_<name>.cpu``, the name ending in the
        container's id when no Kubernetes names can be had)."""
        ids = self._node.app_ids
        found = foreign = 0
        for chart in self._charts():
            if chart.startswith("cgroup_") and chart.endswith(".cpu"):
                cid = chart[: -len(".cpu")].rpartition("_")[2]
                if cid in ids:
                    found += 1
                    if cid == self._node.burner_id:
                        self._burner_chart = chart
                else:
                    foreign += 1
        self.foreign = foreign
        return found

    def reading(self) -> Reading | None:
        """Every stored point of the burner's CPU chart since netdata started, added up:
        a point is a rate in % of one core over the ``update every`` seconds before it."""
        if self._burner_chart is None:
            return None
        params: dict[str, str | int] = {
            "chart": self._burner_chart,
            "after": self._started,
            "before": int(time.time()),
            "format": "json",
            "options": "unaligned",
        }
        try:
            r = self._client.get("/api/v1/data", params=params)
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        body = r.json()
        points = [row for row in body["data"] if any(v is not None for v in row[1:])]
        if not points:
            return None
        total = sum(v for row in points for v in row[1:] if v is not None)
        last = max(row[0] for row in points)
        return Reading(total * INTERVAL / 100, float(last))

    def stop(self) -> None:
        self.cgroup.stop()
        self._client.close()
