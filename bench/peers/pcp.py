"""Performance Co-Pilot 6.0 (Debian's package): pmcd with the proc PMDA (where the
``cgroup.*`` metrics live) and pmlogger recording per-container CPU and memory every
10 s, as a PCP user records them.

Everything runs from files written here: a namespace (PMNS) of just the pmcd and proc
PMDAs, a pmcd.conf with those two, pmlogger's metric list, and PCP's run, tmp and log
directories pointed here through its environment variables (PCP_RUN_DIR, PCP_TMP_DIR,
PCP_LOG_DIR). Both run in the node's namespaces (bench/peers/node.py), so PCP walks the
node's cgroups and not the ones other work on this shared machine keeps creating;
instance names are relative to the node (``/kubepods/burstable/pod…/<id>``). pmcd
answers on a unix socket; pmcd and pmlogger each run in a network namespace of their own
(no port anyone can reach; PMLOGGER_LOCAL keeps pmlogger's control port local too).

The hybrid layout needs one more thing. The proc PMDA of PCP 6.0 treats a node with any
v1 hierarchy as v1 and then walks *every* cgroup mount for each v1 controller, the
cgroup2 one included (a cgroup2 mount has no controller list to exclude it by); cgroups
of the same path in both are one instance name, and the cgroup2 walk, last, resets the
instances found in the v1 hierarchy and refills them from files cgroup2 does not have:
``cgroup.cpuacct.usage`` and ``cgroup.memory.usage`` come back with no values at all,
and the cgroup2 metrics (``cgroup.cpu.stat.*``) are only refreshed on a node without v1.
So pmcd (and the PMDA it starts) runs in a mount namespace of its own in which the
cgroup2 mount is unmounted: PCP sees the v1 hierarchies alone, which hold every
controller on this node, and its instance names are the v1 paths, one per cgroup.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.peers.accounting import ToolCgroup
from bench.peers.node import PeerNode
from bench.peers.tool import INTERVAL, Reading, check_alive

PMCD = "/usr/lib/pcp/bin/pmcd"
PMLOGGER = "/usr/lib/pcp/bin/pmlogger"
PMNSMERGE = "/usr/lib/pcp/bin/pmnsmerge"
PMNS_DIR = Path("/var/lib/pcp/pmns")
PMDAS = Path("/var/lib/pcp/pmdas")

METRICS = (
    "cgroup.cpuacct.usage",
    "cgroup.cpuacct.stat.user",
    "cgroup.cpuacct.stat.system",
    "cgroup.memory.usage",
    "cgroup.memory.stat.rss",
    "cgroup.memory.stat.cache",
    "cgroup.memory.stat.inactive_file",
)
"""CPU (total, user, system) and memory (usage, RSS, cache, and inactive file pages for
a working set) per cgroup: what the agent reads, in PCP's names."""

PMCD_CONF = f"""\
pmcd\t2\tdso\tpmcd_init\t{PMDAS}/pmcd/pmda_pmcd.so
proc\t3\tpipe\tbinary\t{PMDAS}/proc/pmdaproc -d 3

[access]
allow "local:*" : all;
disallow ".*" : all;
"""

V1_ONLY = """
for m in $(awk '$3 == "cgroup2" {print $2}' /proc/mounts | sort -u); do
    while umount "$m" 2>/dev/null; do :; done
done
if awk '$3 == "cgroup2" {found = 1} END {exit !found}' /proc/mounts; then exit 1; fi
exec "$@"
"""
"""sh, in a fresh mount namespace: unmount every cgroup2 mount (the node's view and the
host's mount under it), then exec the command."""


def available() -> bool:
    tools = (PMCD, PMLOGGER, PMNSMERGE)
    return all(os.access(t, os.X_OK) for t in tools) and shutil.which("pmrep") is not None


class Pcp:
    name = "pcp"
    lag = 1.0

    def __init__(self, node: PeerNode, scratch: Path) -> None:
        self._node = node
        self._dir = scratch / "pcp"
        for sub in ("run", "tmp", "log/pmcd", "archive"):
            (self._dir / sub).mkdir(parents=True)
        self.cgroup = node.tool_cgroup("pcp")
        self.cgroups: list[ToolCgroup] = [self.cgroup]
        self._socket = self._dir / "run" / "pmcd.socket"
        self._archive = self._dir / "archive" / "bench"
        self._burner = ""

    def _env(self) -> dict[str, str]:
        return dict(os.environ) | {
            "PCP_RUN_DIR": str(self._dir / "run"),
            "PCP_TMP_DIR": str(self._dir / "tmp"),
            "PCP_LOG_DIR": str(self._dir / "log"),
            "PMLOGGER_LOCAL": "1",
            # pmrep is Python: the distribution's, which has PCP's modules
            "PCP_PYTHON_PROG": "/usr/bin/python3",
        }

    def start(self) -> None:
        pmns = self._dir / "root"
        subprocess.run(
            [PMNSMERGE, str(PMNS_DIR / "root_pmcd"), str(PMNS_DIR / "root_proc"), str(pmns)],
            check=True,
            capture_output=True,
        )
        conf = self._dir / "pmcd.conf"
        conf.write_text(PMCD_CONF)
        config = self._dir / "pmlogger.conf"
        config.write_text(
            f"log mandatory on every {INTERVAL} seconds {{\n"
            + "".join(f"    {m}\n" for m in METRICS)
            + "}\n"
        )
        pmcd = [PMCD, "-f", "-A", "-U", "root", "-c", str(conf), "-n", str(pmns)]
        pmcd += ["-s", str(self._socket), "-l", str(self._dir / "log" / "pmcd.log")]
        pmcd = ["unshare", "-m", "-n", "sh", "-c", V1_ONLY, "sh", *pmcd]
        env = self._env()
        logs = self._dir / "log" / "pmcd"  # its PMDAs write their logs where they start
        self._node.spawn(self.cgroup.path, pmcd, log=self._dir / "pmcd.out", env=env, cwd=logs)
        self._node.sync()
        deadline = time.monotonic() + 30
        while not self._socket.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"bench_peers: pmcd did not start; see {self._dir}")
            check_alive(self, self._dir)
            time.sleep(0.1)
        time.sleep(0.5)  # the socket exists before pmcd has started its PMDAs
        logger = ["unshare", "-n", PMLOGGER, "-h", f"unix:{self._socket}", "-c", str(config)]
        logger += ["-t", f"{INTERVAL}sec", "-l", str(self._dir / "log" / "pmlogger.log")]
        logger.append(str(self._archive))
        self._node.spawn(self.cgroup.path, logger, log=self._dir / "pmlogger.out", env=env)
        self._node.sync()

    def _instances(self) -> list[str]:
        """The instance names pmcd answers for cgroup.cpuacct.usage right now."""
        out = subprocess.run(
            ["pminfo", "-h", f"unix:{self._socket}", "-f", "cgroup.cpuacct.usage"],
            capture_output=True,
            text=True,
            env=self._env(),
        ).stdout
        return [line.split('"')[1] for line in out.splitlines() if 'or "' in line]

    def expected(self) -> int:
        return len(self._node.ids)

    def seen(self) -> int:
        check_alive(self, self._dir / "log")
        if not self._archive.with_suffix(".0").exists():
            return 0
        ids = self._node.ids
        names = self._instances()
        self._burner = next((n for n in names if n.endswith("/" + self._node.burner_id)), "")
        return sum(n.rpartition("/")[2] in ids for n in names)

    def reading(self) -> Reading | None:
        """The burner's last recorded ``cgroup.cpuacct.usage``, raw, from pmlogger's
        archive (read by pmrep in the bench's own process tree, not PCP's cgroup)."""
        if not self._burner:
            return None
        pmrep = ["pmrep", "-a", str(self._archive), "-u", "-r", "-o", "csv", "-f", "%s"]
        out = subprocess.run(
            [*pmrep, "-i", self._burner, "cgroup.cpuacct.usage"],
            capture_output=True,
            text=True,
            env=self._env(),
        ).stdout
        rows = [r for r in csv.reader(io.StringIO(out)) if len(r) == 2 and r[1].isdigit()]
        if not rows:
            return None
        sampled, value = rows[-1]
        return Reading(int(value) / 1e9, float(sampled))

    def stop(self) -> None:
        self.cgroup.stop()
