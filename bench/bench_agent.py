"""The served agent against the pass in-process and the bare /proc scan, at 250 and 1,000
containers.

On each synthetic node (``bench.harness.SyntheticNode.populate``: kubelet-shaped pods of a
pause sandbox and a seven-process app container, in the real v1 and cgroup2
hierarchies; root only), in one run:

* **baseline**: the least any discovery can do, every ``/proc/<pid>/cgroup`` read once
  in a plain Python loop (``bench.bench_pass.baseline``);
* **pass**: a warm ``Scanner`` with its exit watcher, in this process, under the
  manifests' open-files limit (``--open-files`` of manifests/base/daemonset.yaml);
* **served agent**: ``extractor serve`` (fingerprints on, the manifests' ``--open-files``)
  and ``exporter`` as real processes (``bench.served``), polling and scraped at
  ``INTERVAL``; CPU seconds per minute of both and their children, resident memory, and
  the bytes the exporter read from the socket per poll against a whole snapshot's.

The in-process rounds run while the agent runs, so load from elsewhere hits both. Every
figure is a median over rounds (the agent's over windows); ratios are ratios of medians.
Goals (issue 15): pass ≤ 1.0× baseline at both sizes; served cost 250 → 1,000 at most
4×; a quiet node's poll < 10 % of a whole snapshot's bytes; RSS extractor < 50 MiB,
exporter < 80 MiB at 1,000 containers.

The machine is shared with other suites that start and stop containers, so the bench runs
in namespaces of its own (``bench/isolated.py``: its own PID namespace and cgroup views),
where the node is the synthetic one alone; without them (not root, no unshare) the report
says how many containers came and went meanwhile, what the fingerprint worker used, and
which bytes of a difference were other containers' records.

``BENCH_AGENT_SECONDS`` sets the length of each of the agent's windows (default 60),
``BENCH_AGENT_PODS`` the sizes (default ``125,500``); a smoke run (``bench/rounds.py``)
takes two short windows on two small nodes, enough to show the bench still runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from bench import isolated
from bench.bench_pass import PATHS, baseline
from bench.harness import HYBRID, SyntheticNode, remove_cgroup
from bench.rounds import rounds, smoke
from bench.served import ServedAgent, Usage
from extractor.scanner import Scanner

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 10.0
WINDOWS = rounds(3)
ROUNDS = rounds(15)
SETTLE_SECONDS = 160.0
"""Before the first window (full runs): the agent's first fingerprints and its looks again
at those without a kind (the last 150 s after the first, extractor/fingerprinting.py) are
done, so the windows measure the steady state a node agent lives in."""


def manifest_open_files() -> int:
    """The extractor's --open-files in the DaemonSet the manifests apply."""
    text = (ROOT / "manifests" / "base" / "daemonset.yaml").read_text()
    found = re.search(r"--open-files=(\d+)", text)
    assert found is not None, "no --open-files in manifests/base/daemonset.yaml"
    return int(found.group(1))


@dataclass
class Size:
    containers: int
    processes: int
    baseline_ms: float
    pass_ms: float
    kept: str
    agent: list[Usage]
    memory: tuple[float, float]
    """The extractor's memory cgroup at the end: (usage, of which kernel) MiB."""
    poll: Poll
    churn: tuple[int, int]
    """Containers that appeared and that left on the node while the agent ran."""

    def median(self, read: str) -> float:
        values = {
            "extractor": [u.per_minute("extractor") for u in self.agent],
            "exporter": [u.per_minute("exporter") for u in self.agent],
            "agent": [u.per_minute() for u in self.agent],
            "worker": [u.children["extractor"] * 60 / u.seconds for u in self.agent],
            "poll_bytes": [u.socket_bytes / max(u.polls, 1) for u in self.agent],
            "extractor_rss": [u.rss["extractor"][0] for u in self.agent],
            "exporter_rss": [u.rss["exporter"][0] for u in self.agent],
            "extractor_hwm": [u.rss["extractor"][1] for u in self.agent],
            "exporter_hwm": [u.rss["exporter"][1] for u in self.agent],
        }[read]
        return statistics.median(values)


def thread_cpu(fn: Callable[[], object]) -> float:
    """CPU seconds of this thread during one call (the bench's own event loop, reading the
    agent's answers meanwhile, is another thread)."""
    started = time.thread_time()
    fn()
    return time.thread_time() - started


def in_process(scanner: Scanner, seen: set[str]) -> tuple[float, float]:
    """Median CPU ms of the baseline and of a warm pass, interleaved; adds the container
    ids each pass saw to ``seen``."""
    base, passes = [], []
    for _ in range(ROUNDS):
        base.append(thread_cpu(baseline))
        passes.append(thread_cpu(lambda: seen.update(c.id for c in scanner.take().containers)))
    return statistics.median(base) * 1e3, statistics.median(passes) * 1e3


@dataclass
class Poll:
    """One difference as the exporter gets it, split by whose records it carries."""

    whole: int
    total: int
    foreign: int
    """Bytes of records of containers and pods that are not the bench's (other suites
    running on this machine are not quiet)."""


async def one_poll(socket: str, prefix: str) -> Poll:
    """A whole snapshot, then the changes of the next pass since it."""
    transport = httpx.AsyncHTTPTransport(uds=socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://x", timeout=60) as c:
        whole = await c.get("/v1/snapshot")
        await asyncio.sleep(1.5)  # past the extractor's reuse interval: a new pass
        changes = await c.get("/v1/snapshot/changes", params={"since": whole.headers["ETag"]})
    doc = orjson.loads(changes.content)
    foreign = 0
    for listed in doc["records"].values():
        for record in listed["changed"]:
            usage = record.get("usage") or {}
            if not str(usage.get("cgroup", "")).startswith(prefix):
                foreign += len(orjson.dumps(record))
    return Poll(len(whole.content), len(changes.content), foreign)


def agent_cgroups(name: str) -> list[str]:
    """A cgroup of its own for each of the agent's processes, outside kubepods (so they
    are not containers), in every hierarchy: the extractor's memory cgroup then shows
    the kernel memory its kept files hold."""
    procs = []
    for mount in HYBRID.values():
        os.makedirs(f"{mount}/ri-agent-{name}", exist_ok=True)
        procs.append(f"{mount}/ri-agent-{name}/cgroup.procs")
    return procs


def cgroup_memory(name: str) -> tuple[float, float]:
    base = f"{HYBRID['memory']}/ri-agent-{name}"
    values = []
    for file in ("memory.usage_in_bytes", "memory.kmem.usage_in_bytes"):
        try:
            with open(f"{base}/{file}") as f:
                values.append(int(f.read()) / 2**20)
        except OSError:
            values.append(float("nan"))
    return values[0], values[1]


async def measure(pods: int, seconds: float, open_files: int) -> Size:
    node = SyntheticNode()
    population = node.populate(pods)
    scanner = Scanner(PATHS, watch_exits=True)
    try:
        scanner.take()
        first = {c.id for c in scanner.take().containers}
        seen = set(first)
        kept = scanner.budget.describe()
        processes = scanner.discoverer.listed
        args = (f"--open-files={open_files}",)
        async with ServedAgent(
            interval=INTERVAL, extractor_args=args, cgroups=agent_cgroups
        ) as agent:
            await asyncio.sleep(INTERVAL if smoke() else SETTLE_SECONDS)
            usages: list[Usage] = []
            pass_runs: list[tuple[float, float]] = []
            for _ in range(WINDOWS):
                window = asyncio.create_task(agent.window(seconds))
                pass_runs.append(await asyncio.to_thread(in_process, scanner, seen))
                usages.append(await window)
            poll = await one_poll(agent.socket, node.prefix)
            memory = cgroup_memory("extractor")
        last = {c.id for c in scanner.take().containers}
    finally:
        scanner.close()
        population.stop()
        for name in ("extractor", "exporter"):
            for mount in HYBRID.values():
                remove_cgroup(f"{mount}/ri-agent-{name}")
    return Size(
        containers=len(last),
        processes=processes,
        baseline_ms=statistics.median(b for b, _ in pass_runs),
        pass_ms=statistics.median(p for _, p in pass_runs),
        kept=kept,
        agent=usages,
        memory=memory,
        poll=poll,
        churn=(len(seen - first), len(seen - last)),
    )


def report(sizes: list[Size]) -> bool:
    per_minute = 60.0 / INTERVAL
    met = True
    for s in sizes:
        ratio = s.pass_ms / s.baseline_ms
        quiet = (s.poll.total - s.poll.foreign) / s.poll.whole
        print(
            f"== {s.containers} containers on the node ({s.processes} processes; "
            f"{s.churn[0]} appeared and {s.churn[1]} left meanwhile); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"  descriptors: {s.kept}")
        print(
            f"  baseline {s.baseline_ms:.1f} ms, warm pass {s.pass_ms:.1f} ms CPU: "
            f"{ratio:.2f}x (goal <= 1.0)"
        )
        agent = s.median("agent")
        print(
            f"  served agent at {INTERVAL:g} s: {agent:.3f} CPU s/min (extractor "
            f"{s.median('extractor'):.3f} of which its fingerprint worker "
            f"{s.median('worker'):.3f}, exporter {s.median('exporter'):.3f}); the pass "
            f"alone {s.pass_ms * per_minute / 1e3:.3f}, the baseline "
            f"{s.baseline_ms * per_minute / 1e3:.3f}: agent = "
            f"{agent * 1e3 / per_minute / s.pass_ms:.2f}x the pass, "
            f"{agent * 1e3 / per_minute / s.baseline_ms:.2f}x the baseline"
        )
        print(
            f"  socket: {s.median('poll_bytes') / 1024:.1f} KiB per poll; a whole snapshot "
            f"{s.poll.whole / 1024:.0f} KiB; a difference {s.poll.total / 1024:.1f} KiB, of "
            f"which {s.poll.foreign / 1024:.1f} KiB other suites' records: the quiet node's "
            f"share {quiet:.1%} (goal < 10 %)"
        )
        print(
            f"  RSS: extractor {s.median('extractor_rss'):.1f} MiB (peak "
            f"{s.median('extractor_hwm'):.1f}), exporter {s.median('exporter_rss'):.1f} MiB "
            f"(peak {s.median('exporter_hwm'):.1f}); the extractor's memory cgroup "
            f"{s.memory[0]:.1f} MiB, of which kernel {s.memory[1]:.1f} MiB (its kept files)"
        )
        met = met and ratio <= 1.0 and quiet < 0.1
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        growth = large.median("agent") / small.median("agent")
        grew = large.containers / small.containers
        print(
            f"== {small.containers} -> {large.containers} containers ({grew:.1f}x): served "
            f"agent {growth:.2f}x, pass {large.pass_ms / small.pass_ms:.2f}x, baseline "
            f"{large.baseline_ms / small.baseline_ms:.2f}x (goal: agent <= 4x)"
        )
        met = met and growth <= 4.0
    return met


def main() -> int:
    if os.geteuid() != 0:
        print("bench_agent: needs root (real cgroups); skipped")
        return 0
    if not isolated.inside():
        why = isolated.available()
        if why is None:
            return isolated.run(["bench.bench_agent"])
        print(f"bench_agent: not isolated ({why}): other suites' containers count too")
    short = smoke()
    seconds = float(os.environ.get("BENCH_AGENT_SECONDS", "12" if short else "60"))
    sizes_env = os.environ.get("BENCH_AGENT_PODS", "25,50" if short else "125,500")
    pods = [int(p) for p in sizes_env.split(",")]
    open_files = manifest_open_files()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = open_files if hard == resource.RLIM_INFINITY else min(open_files, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # as the extractor runs
    started = time.monotonic()
    sizes = [asyncio.run(measure(n, seconds, open_files)) for n in pods]
    met = report(sizes)
    print(f"({time.monotonic() - started:.0f} s; open-files limit {wanted})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
