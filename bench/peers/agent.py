"""This project's served agent, as the DaemonSet runs it but on this machine: the
extractor (``extractor serve``, fingerprints on, so with its worker process, with the
manifests' ``--open-files`` within this machine's hard limit) on a unix socket, and the
exporter polling it every 10 s (its default) with the API server, auth, peers and usage
events off, listening on loopback; both in the node's namespaces (bench/peers/node.py),
where the extractor sees the node's processes and cgroups as a hostPID pod with a
private cgroup namespace sees a node's. Each runs in a cgroup of its own, so their costs
are reported apart and added up."""

from __future__ import annotations

import calendar
import os
import re
import resource
import sys
import time
from pathlib import Path

import httpx

from bench.bench_agent import manifest_open_files
from bench.peers.accounting import ToolCgroup
from bench.peers.node import PeerNode
from bench.peers.tool import INTERVAL, Reading, check_alive

ROOT = Path(__file__).resolve().parents[2]


class Agent:
    name = "agent"
    lag = 1.0  # takenAt is to the second

    def __init__(self, node: PeerNode, scratch: Path) -> None:
        self._node = node
        self._dir = scratch / "agent"
        self._dir.mkdir()
        self.extractor_cgroup = node.tool_cgroup("extractor")
        self.exporter_cgroup = node.tool_cgroup("exporter")
        self.cgroups: list[ToolCgroup] = [self.extractor_cgroup, self.exporter_cgroup]
        self._url = ""

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
        env["PYTHONPATH"] = str(ROOT)
        return env

    def start(self) -> None:
        sock = str(self._dir / "extractor.sock")
        cmd = [sys.executable, "-m", "runtime_insights"]
        # within the hard limit this machine gives (a container runtime's is higher)
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        files = manifest_open_files()
        files = files if hard == resource.RLIM_INFINITY else min(files, hard)
        serve = ["extractor", "serve", "--socket", sock, f"--open-files={files}"]
        self._node.spawn(
            self.extractor_cgroup.path,
            [*cmd, *serve],
            log=self._dir / "extractor.log",
            env=self._env(),
            cwd=ROOT,
        )
        env = self._env() | {
            "RUNTIME_INSIGHTS_HOST": "127.0.0.1",
            "RUNTIME_INSIGHTS_PORT": "0",
            "RUNTIME_INSIGHTS_EXTRACTOR_SOCKET": sock,
            "RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS": str(INTERVAL),
            "RUNTIME_INSIGHTS_NODE_NAME": "bench-node",
            "RUNTIME_INSIGHTS_KUBE_ENABLED": "false",
        }
        log = self._dir / "exporter.log"
        self._node.spawn(self.exporter_cgroup.path, [*cmd, "exporter"], log=log, env=env, cwd=ROOT)
        self._node.sync()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"listening on http://[^:]+:(\d+)", log.read_text(errors="replace"))
            if m:
                self._url = f"http://127.0.0.1:{m.group(1)}"
                return
            check_alive(self, self._dir)
            time.sleep(0.1)
        raise SystemExit("bench_peers: the exporter did not start listening")

    def _containers(self) -> tuple[list[dict[str, object]], float] | None:
        try:
            r = httpx.get(f"{self._url}/v1/containers", timeout=30)
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        body = r.json()
        taken = calendar.timegm(time.strptime(body["takenAt"], "%Y-%m-%dT%H:%M:%SZ"))
        return body["containers"], float(taken)

    def expected(self) -> int:
        """App containers: /v1/containers leaves sandboxes out (/v1/pods counts them in
        their pod)."""
        return len(self._node.app_ids)

    def seen(self) -> int:
        got = self._containers()
        return 0 if got is None else sum(c["id"] in self._node.app_ids for c in got[0])

    def reading(self) -> Reading | None:
        got = self._containers()
        if got is None:
            return None
        containers, taken = got
        for c in containers:
            if c["id"] == self._node.burner_id:
                cpu = c["cpu"]
                assert isinstance(cpu, dict)
                total = cpu.get("totalSeconds")
                return None if total is None else Reading(float(total), taken)
        return None

    def open_files_limit(self) -> str:
        """The extractor's soft and hard RLIMIT_NOFILE as it runs (its descriptor budget)."""
        for pid in self.extractor_cgroup.pids():
            for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return f"{soft}/{hard}"
        return "?"

    def stop(self) -> None:
        for cg in self.cgroups:
            cg.stop()
