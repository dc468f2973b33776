"""The served agent against its peers, netdata's cgroups plugin and Performance Co-Pilot,
on one synthetic node, every tool sampling every 10 s (root only).

The node (bench/peers/node.py): N containers in N/2 kubelet-shaped pods, a pause
sandbox and an app container of seven sleepers each (four processes per container, as
issue 15's node had), in the real v1 hierarchies and the cgroup2 one of this hybrid
machine, for N = 50, 250 and 1,000. Per size every tool starts afresh with a
configuration of its own (bench/peers/agent.py, netdata.py, pcp.py), each in a cgroup of
its own, and the bench waits until each reports every container it is meant to. Then all
three run through the same windows, so that load from elsewhere hits them alike; per
window:

- **CPU**: each tool's ``cpuacct.usage`` over the window, as CPU seconds per minute, and
  split by process and thread (schedstat of the threads alive at both ends);
- **memory**: the resident memory of each tool's processes at the window's end;
- **accuracy**: one container holds a burner, let run for the first part of the window
  and stopped otherwise; each tool's reading of that container's cumulative CPU after
  it stopped, minus its reading before it ran, against what the kernel's
  ``cpuacct.usage`` counted for the container: the error in %. A reading counts only if
  it comes from a sample taken after the burner stopped (one that holds all of it).

Tool readings are taken between windows, outside the CPU measured. Reported per size:
medians over windows, the load average, and issue 15's goals: the served agent at most
0.5x netdata's CPU at 250 and 1,000 containers, at most 1.0x at every size.
``python -m bench.bench_peers [--sizes 50,250,1000] [--windows N]``; in smoke mode
(bench/rounds.py) one node of 20 containers, one short window (about a minute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench.peers import netdata, pcp
from bench.peers.agent import Agent
from bench.peers.netdata import Netdata
from bench.peers.node import PeerNode
from bench.peers.pcp import Pcp
from bench.peers.tool import INTERVAL, Reading, Tool
from bench.rounds import smoke

SIZES = (50, 250, 1000)
WINDOWS = 5
APP_PROCESSES = 7
GOALS = {250: 0.5, 1000: 0.5}
"""Served agent / netdata's CPU, at most; 1.0 at every other size."""
LABELS = {
    "agent": "agent: extractor (fingerprints on) + exporter",
    "netdata": "netdata 1.37, cgroups plugin only",
    "pcp": "PCP 6.0: pmcd + proc PMDA + pmlogger",
}


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    windows: int
    burn: float
    """Seconds the burner runs at the start of each window."""
    quiet: float
    """Seconds after it stopped until the window ends: every tool samples at least
    twice more (netdata's point after the stop holds the 10 s before it)."""
    settle: float
    """Seconds between the last tool's readiness and the first window: what a tool
    still does for the containers it has just found is start-up, not steady cost (the
    agent looks again at a container whose kind it did not find until 150 s after its
    first look, extractor/fingerprinting.py)."""


FULL = Plan(SIZES, WINDOWS, burn=35.0, quiet=25.0, settle=160.0)
SMOKE = Plan((20,), 1, burn=3.0, quiet=22.0, settle=0.0)


@dataclass
class Series:
    """One tool's figures, one entry per window."""

    cpu_per_min: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    error_pct: list[float] = field(default_factory=list)
    unsampled: int = 0
    cpu_parts: dict[str, list[float]] = field(default_factory=dict)
    rss_parts: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Run:
    """One size: every tool's series and what the run was like."""

    size: int
    processes: int
    build_s: float
    ready_s: dict[str, float]
    open_files: str
    loads: list[float]
    burned_s: list[float] = field(default_factory=list)
    foreign: int = 0
    """netdata's charts of cgroups not of the node: its figures hold other work if > 0."""
    series: dict[str, Series] = field(default_factory=dict)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_ready(tools: Sequence[Tool], timeout: float) -> dict[str, float]:
    """Seconds until each tool reported every container it is meant to, and the burner."""
    start = time.monotonic()
    pending = list(tools)
    ready: dict[str, float] = {}
    while pending:
        for tool in list(pending):
            if tool.seen() >= tool.expected() and tool.reading() is not None:
                pending.remove(tool)
                ready[tool.name] = time.monotonic() - start
        if pending and time.monotonic() - start > timeout:
            states = ", ".join(f"{t.name} {t.seen()}/{t.expected()}" for t in pending)
            raise SystemExit(f"bench_peers: not every tool saw the node in time: {states}")
        time.sleep(1)
    return ready


def cpu_parts(tool: Tool) -> dict[str, int]:
    """CPU ns per cgroup (the agent has two) and per process/thread name within it."""
    out: dict[str, int] = {}
    for cg in tool.cgroups:
        if len(tool.cgroups) > 1:
            out[cg.name] = cg.cpu_ns()
        for name, ns in cg.threads_ns().items():
            out[f"{cg.name}: {name}"] = ns
    return out


def accuracy(
    before: Reading | None, after: Reading | None, stopped_at: float, lag: float, kernel_ns: int
) -> float | None:
    """The tool's error on the burner in %, or None when its latest sample is not one
    taken after the burner stopped (it would not hold all the burn)."""
    if before is None or after is None or after.sampled_at < stopped_at + lag:
        return None
    kernel = kernel_ns / 1e9
    return (after.cpu_seconds - before.cpu_seconds - kernel) / kernel * 100


def _window(
    run: Run, node: PeerNode, tools: Sequence[Tool], plan: Plan, readings: dict[str, Reading | None]
) -> None:
    cpu0 = {t.name: sum(cg.cpu_ns() for cg in t.cgroups) for t in tools}
    parts0 = {t.name: cpu_parts(t) for t in tools}
    t0 = time.monotonic()
    _, stopped_at, kernel_ns = node.burn(plan.burn)
    time.sleep(plan.quiet)
    minutes = (time.monotonic() - t0) / 60
    cpu1 = {t.name: sum(cg.cpu_ns() for cg in t.cgroups) for t in tools}
    parts1 = {t.name: cpu_parts(t) for t in tools}
    run.loads.append(load_average())
    run.burned_s.append(kernel_ns / 1e9)
    for t in tools:
        s = run.series[t.name]
        s.cpu_per_min.append((cpu1[t.name] - cpu0[t.name]) / 1e9 / minutes)
        for key, ns in parts1[t.name].items():
            # a thread or process that started in the window counts from zero
            spent = ns - parts0[t.name].get(key, 0)
            s.cpu_parts.setdefault(key, []).append((spent if spent >= 0 else ns) / 1e9 / minutes)
        rss = {k: v for cg in t.cgroups for k, v in cg.rss_bytes().items()}
        s.rss_mib.append(sum(rss.values()) / 2**20)
        for key, size in rss.items():
            s.rss_parts.setdefault(key, []).append(size / 2**20)
        after = t.reading()
        error = accuracy(readings[t.name], after, stopped_at, t.lag, kernel_ns)
        if error is None:
            s.unsampled += 1
        else:
            s.error_pct.append(error)
        readings[t.name] = after


def measure(size: int, plan: Plan, scratch: Path) -> Run:
    node = PeerNode(size, APP_PROCESSES, scratch)
    tools: list[Tool] = []
    try:
        t0 = time.monotonic()
        node.build()
        build_s = time.monotonic() - t0
        agent = Agent(node, scratch)
        netdata_tool = Netdata(node, scratch)
        tools = [agent, netdata_tool, Pcp(node, scratch)]
        for tool in tools:
            tool.start()
        ready = wait_ready(tools, timeout=120 + size * 0.6)
        run = Run(size, node.processes, build_s, ready, agent.open_files_limit(), [load_average()])
        run.series = {t.name: Series() for t in tools}
        time.sleep(plan.settle)
        readings = {t.name: t.reading() for t in tools}
        for _ in range(plan.windows):
            _window(run, node, tools, plan, readings)
        netdata_tool.seen()
        run.foreign = netdata_tool.foreign
        return run
    finally:
        for tool in tools:
            tool.stop()
        node.close()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(run: Run, plan: Plan) -> bool:
    """Print one size's table; True when the agent met its goal there."""
    ready = ", ".join(f"{name} {s:.0f} s" for name, s in run.ready_s.items())
    print(
        f"\n{run.size} containers ({run.size // 2} pods, {run.processes} processes); "
        f"{plan.windows} windows of {plan.burn + plan.quiet:.0f} s, every tool at "
        f"{INTERVAL} s; load average {min(run.loads):.1f}-{max(run.loads):.1f}; node built "
        f"in {run.build_s:.0f} s, then ready: {ready}; extractor open files "
        f"(soft/hard) {run.open_files}; burner {_median(run.burned_s):.2f} CPU s a window"
    )
    if run.foreign:
        print(f"WARNING: netdata charted {run.foreign} cgroups not of the node: its CPU holds them")
    agent_cpu = _median(run.series["agent"].cpu_per_min)
    print(f"{'tool':46} {'CPU s/min':>9} {'x agent':>7} {'RSS MiB':>7}  burner CPU error")
    for name, s in run.series.items():
        cpu = _median(s.cpu_per_min)
        error = "-"
        if s.error_pct:
            worst = max(s.error_pct, key=abs)
            error = f"{_median(s.error_pct):+.3f} % (worst {worst:+.3f} %)"
        if s.unsampled:
            error += f"; {s.unsampled} window(s) without a sample after the stop"
        rss_mib = _median(s.rss_mib)
        print(f"{LABELS[name]:46} {cpu:9.3f} {cpu / agent_cpu:7.2f} {rss_mib:7.1f}  {error}")
        print(f"    CPU s/min per window: {', '.join(f'{v:.3f}' for v in s.cpu_per_min)}")
        parts = sorted(s.cpu_parts.items(), key=lambda kv: -_median(kv[1]))
        for key, values in parts[:6]:
            print(f"    {key:42} {_median(values):9.3f}")
        rss = ", ".join(f"{k} {_median(v):.1f}" for k, v in sorted(s.rss_parts.items()))
        print(f"    RSS MiB: {rss}")
    ratio = agent_cpu / _median(run.series["netdata"].cpu_per_min)
    goal = GOALS.get(run.size, 1.0)
    met = ratio <= goal
    print(
        f"served agent / netdata cgroups plugin: {ratio:.2f}x (goal <= {goal}x): "
        f"{'met' if met else 'MISSED'}"
    )
    return met


def _end(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP end the bench through its cleanup, as Ctrl-C does."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_peers")
    parser.add_argument("--sizes", default=None, help="containers per node, comma-separated")
    parser.add_argument("--windows", type=int, default=WINDOWS)
    args = parser.parse_args(argv if argv is not None else [])
    if os.geteuid() != 0:
        print("bench_peers: needs root (real cgroups, namespaces); skipped")
        return 0
    if not (netdata.available() and pcp.available()):
        print("bench_peers: netdata or PCP missing (scripts/peer-deps.sh installs them); skipped")
        return 0
    plan = SMOKE if smoke() else FULL
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else plan.sizes
    windows = min(args.windows, plan.windows) if smoke() else args.windows
    plan = Plan(sizes, windows, plan.burn, plan.quiet, plan.settle)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _end)
    ok = True
    for size in plan.sizes:
        scratch = Path(tempfile.mkdtemp(prefix="ri-bench-peers-"))
        try:
            run = measure(size, plan, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        ok = report(run, plan) and ok
        sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
