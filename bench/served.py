"""The served agent as the DaemonSet runs it: ``extractor serve`` and ``exporter``, real
processes on one unix socket, and what they cost.

A bench that compares the agent with anything else (the pass in-process, the bare
``/proc`` scan, another monitoring tool) starts it with :class:`ServedAgent`, lets it
run for a window and reads :meth:`ServedAgent.usage`: CPU seconds of each process and
its descendants (a fingerprint worker counts as the extractor's), resident memory, and
how many polls and scrapes the window held. Nothing here knows the synthetic node: any
node the processes can see works, ``bench.harness.SyntheticNode.populate`` makes one.

``python -m bench.served --pods 125 --minutes 2`` runs it once on a synthetic node (in
namespaces of its own, ``bench/isolated.py``, unless ``--shared``) and prints CPU
seconds per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid``: its own, its reaped children's, and every live
    descendant's (found through /proc/<pid>/task/*/children)."""
    return own_cpu(pid) + descendants_cpu(pid)


def own_cpu(pid: int) -> float:
    """CPU seconds of the process itself, every thread of it."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat; [0] here is field 3
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants_cpu(pid: int) -> float:
    """CPU seconds of its children, reaped (cutime, cstime) and live, and theirs."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    total = (int(fields[13]) + int(fields[14])) / TICKS
    for child in children(pid):
        total += process_cpu(child)
    return total


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    return out


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@dataclass
class Usage:
    """What the agent's processes used over one window."""

    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per process ("extractor", "exporter") over the window, children
    included."""
    children: dict[str, float] = field(default_factory=dict)
    """Of which their children's (the extractor's fingerprint worker)."""
    rss: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(VmRSS, VmHWM) MiB per process at the window's end."""
    polls: int = 0
    scrapes: int = 0
    socket_bytes: int = 0
    """Bytes the exporter read from the extractor's socket in the window."""

    def per_minute(self, name: str | None = None) -> float:
        """CPU seconds per minute of one process, or of both."""
        used = self.cpu[name] if name is not None else sum(self.cpu.values())
        return used * 60.0 / self.seconds


class ServedAgent:
    """``runtime-insights extractor serve`` + ``runtime-insights exporter`` (API server
    off, meter off) polling every ``interval`` seconds; with ``scrape``, a Prometheus
    stand-in fetches ``/metrics`` at the same interval, as a real deployment is scraped."""

    def __init__(
        self,
        *,
        interval: float = 10.0,
        fingerprints: bool = True,
        scrape: bool = True,
        extractor_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        cgroups: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.interval = interval
        self.fingerprints = fingerprints
        self.scrape = scrape
        self.extractor_args = extractor_args
        self.extra_env = env or {}
        self.cgroups = cgroups
        """Process name → the cgroup.procs files it joins before it starts."""
        self.tmp = Path(tempfile.mkdtemp(prefix="ri-bench-agent-"))
        self.socket = str(self.tmp / "extractor.sock")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.port = 0
        self.scrapes = 0
        self._scraper: asyncio.Task[None] | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
        env.update(PYTHONPATH=str(ROOT), **self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        procs = self.cgroups(name) if self.cgroups is not None else []

        def join() -> None:
            for path in procs:
                with open(path, "w") as f:
                    f.write("0")  # 0: the writing process itself

        with (self.tmp / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "runtime_insights", *argv],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=join if procs else None,
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    async def start(self) -> None:
        argv = ["extractor", "serve", "--socket", self.socket, *self.extractor_args]
        if not self.fingerprints:
            argv.append("--no-fingerprints")
        self._spawn("extractor", argv, self._env())
        await self._until(lambda: os.path.exists(self.socket), "extractor socket")
        env = self._env()
        env.update(
            RUNTIME_INSIGHTS_HOST="127.0.0.1",
            RUNTIME_INSIGHTS_PORT="0",
            RUNTIME_INSIGHTS_EXTRACTOR_SOCKET=self.socket,
            RUNTIME_INSIGHTS_NODE_NAME="bench-node",
            RUNTIME_INSIGHTS_KUBE_ENABLED="false",
            RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS=str(self.interval),
        )
        self._spawn("exporter", ["exporter"], env)
        port = re.compile(r"listening on http://[^:]+:(\d+)")
        await self._until(lambda: port.search(self.log("exporter")) is not None, "exporter port")
        found = port.search(self.log("exporter"))
        assert found is not None
        self.port = int(found.group(1))
        await self._until_ready()
        if self.scrape:
            self._scraper = asyncio.create_task(self._scrape())

    async def _until(self, done: object, what: str, timeout: float = 60.0) -> None:
        assert callable(done)
        deadline = time.monotonic() + timeout
        while not done():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log(name)[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {timeout:g}s")
            await asyncio.sleep(0.05)

    async def get(self, path: str) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}{path}") as resp,
        ):
            return resp.status, await resp.read()

    async def _until_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                status, _ = await self.get("/readyz")
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"exporter not ready: {self.log('exporter')[-2000:]}")

    async def _scrape(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                        await resp.read()
                        self.scrapes += 1
                await asyncio.sleep(self.interval)

    async def polls(self) -> tuple[int, int]:
        """(snapshot passes the exporter asked for, bytes it read from the socket), from
        its own /metrics."""
        _, body = await self.get("/metrics")
        text = body.decode()
        passes = re.search(r"^runtime_insights_exporter_passes_total (\S+)$", text, re.M)
        moved = re.search(r"^runtime_insights_exporter_snapshot_bytes_total (\S+)$", text, re.M)
        return (
            int(float(passes.group(1))) if passes else 0,
            int(float(moved.group(1))) if moved else 0,
        )

    def cpu(self) -> dict[str, float]:
        return {name: process_cpu(proc.pid) for name, proc in self.processes.items()}

    def children_cpu(self) -> dict[str, float]:
        return {name: descendants_cpu(proc.pid) for name, proc in self.processes.items()}

    async def window(self, seconds: float) -> Usage:
        """Run for ``seconds`` and return what the processes used meanwhile."""
        polls, moved = await self.polls()
        scrapes, before, start = self.scrapes, self.cpu(), time.monotonic()
        kids = self.children_cpu()
        await asyncio.sleep(seconds)
        after, elapsed = self.cpu(), time.monotonic() - start
        kids_after = self.children_cpu()
        polls_after, moved_after = await self.polls()
        return Usage(
            seconds=elapsed,
            cpu={name: after[name] - before[name] for name in after},
            children={name: kids_after[name] - kids[name] for name in kids_after},
            rss={name: rss_mib(proc.pid) for name, proc in self.processes.items()},
            polls=polls_after - polls,
            scrapes=self.scrapes - scrapes,
            socket_bytes=moved_after - moved,
        )

    async def stop(self) -> None:
        if self._scraper is not None:
            self._scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scraper
        for proc in reversed(list(self.processes.values())):
            proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def __aenter__(self) -> ServedAgent:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


async def run_for(pods: int, minutes: float, interval: float, fingerprints: bool) -> Usage:
    """The agent on a fresh synthetic node of ``pods`` pods (two containers each) for
    ``minutes``, after one warm-up interval."""
    from bench.harness import SyntheticNode

    node = SyntheticNode()
    population = node.populate(pods)
    try:
        async with ServedAgent(interval=interval, fingerprints=fingerprints) as agent:
            await asyncio.sleep(interval)
            return await agent.window(minutes * 60.0)
    finally:
        population.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.served", description=__doc__)
    parser.add_argument("--pods", type=int, default=125, help="synthetic pods (2 containers each)")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=10.0, help="poll and scrape interval")
    parser.add_argument("--no-fingerprints", action="store_true")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="run on the machine as it is (default: in namespaces of its own, "
        "bench/isolated.py, so other containers on the machine are not counted)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.served: needs root (real cgroups); skipped")
        return 0
    from bench import isolated

    if not args.shared and not isolated.inside() and isolated.available() is None:
        return isolated.run(["bench.served", *(argv if argv is not None else sys.argv[1:])])
    usage = asyncio.run(run_for(args.pods, args.minutes, args.interval, not args.no_fingerprints))
    print(
        f"{2 * args.pods} synthetic containers, {args.interval:g} s interval, "
        f"{usage.seconds:.0f} s window, load average {os.getloadavg()[0]:.2f}"
    )
    for name in usage.cpu:
        rss, hwm = usage.rss[name]
        print(
            f"{name}: {usage.per_minute(name):.3f} CPU s/min, "
            f"RSS {rss:.1f} MiB (peak {hwm:.1f} MiB)"
        )
    print(
        f"agent: {usage.per_minute():.3f} CPU s/min; {usage.polls} polls, {usage.scrapes} scrapes"
    )
    if usage.polls:
        print(f"socket: {usage.socket_bytes / usage.polls / 1024:.1f} KiB per poll")
    return 0


if __name__ == "__main__":
    sys.exit(main())
