"""``runtime-insights node``: the whole node agent on one machine, without Kubernetes.

Why: the DaemonSet runs the extractor and the exporter as two processes joined by a unix
socket; so does this command, with embedded defaults for a machine that has no cluster
(loopback, no authentication, no API server, usage events in a local file instead of
OpenMeter). It starts both as child processes, waits until the exporter answers with a
first snapshot, prints where to ``curl`` and where the events go (and, in one line each,
why the answer may be thin: not root, no containers), and on Ctrl-C or SIGTERM stops
both. Each child runs in a process group of its own and is asked to end with the parent
too (``PR_SET_PDEATHSIG``), so even a killed parent leaves nothing behind.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path

import httpx

START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
ENDPOINTS = (
    ("/v1/containers", "every container: names, CPU, memory, fingerprint"),
    ("/v1/pods", "every pod with its totals and containers"),
    ("/metrics", "Prometheus text format"),
    ("/gather_runtime_info", "insights-runtime-extractor's answer"),
    ("/v1/events?initial=true", "container starts and stops (Server-Sent Events; curl -N)"),
)
_PR_SET_PDEATHSIG = 1


class NodeError(Exception):
    """A child could not start or ended early; the message says which and why."""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "runtime-insights"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="where the exporter listens")
    p.add_argument(
        "--port", type=int, default=8080, help="the exporter's port (default: 8080; 0: any free)"
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the meter's spool and the events file (default: ~/.local/state/runtime-insights)",
    )
    p.add_argument(
        "--events-file", type=Path, default=None, help="default: <state-dir>/events.jsonl"
    )
    p.add_argument("--poll-interval", type=float, default=5.0, help="seconds between snapshots")
    p.add_argument(
        "--meter-interval", type=float, default=60.0, help="seconds per usage-event window"
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _extractor_argv(args: argparse.Namespace, sock: str) -> list[str]:
    argv = [sys.executable, "-m", "runtime_insights", "extractor", "serve", "--socket", sock]
    argv += ["--proc-root", args.proc_root, "--cgroup-root", args.cgroup_root]
    for d in args.containerd_state or ():
        argv += ["--containerd-state", d]
    for d in args.crio_state or ():
        argv += ["--crio-state", d]
    if args.no_fingerprints:
        argv.append("--no-fingerprints")
    return argv


def exporter_environment(
    args: argparse.Namespace, sock: str, state: Path, events: Path
) -> dict[str, str]:
    """The caller's environment with this command's embedded defaults on top."""
    env = dict(os.environ)
    env.update(
        RUNTIME_INSIGHTS_HOST=args.host,
        RUNTIME_INSIGHTS_PORT=str(args.port),
        RUNTIME_INSIGHTS_AUTH_ENABLED="false",
        RUNTIME_INSIGHTS_KUBE_ENABLED="false",
        RUNTIME_INSIGHTS_PEERS_ENABLED="false",
        RUNTIME_INSIGHTS_EXTRACTOR_SOCKET=sock,
        RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS=f"{args.poll_interval:g}",
        RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS=f"{args.meter_interval:g}",
        RUNTIME_INSIGHTS_METER_SPOOL_DIR=str(state / "meter"),
        RUNTIME_INSIGHTS_METER_SINK="file",
        RUNTIME_INSIGHTS_METER_FILE=str(events),
    )
    for name in ("OPENMETER_URL", "RUNTIME_INSIGHTS_OPENMETER_URL"):
        env.pop(name, None)  # the events go to the file; OpenMeter is the DaemonSet's job
    return env


class Node:
    """The two children; ``stop()`` ends both, whatever state they are in."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        # a process group of its own: Ctrl-C reaches this command only, which stops the
        # children in order
        self.children[name] = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent,
        )

    def ended(self) -> tuple[str, int] | None:
        """(name, exit code) of a child that is no longer running."""
        for name, child in self.children.items():
            code = child.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children.values():
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _wait_ready(node: Node, url: str, stopping: list[int]) -> dict[str, object]:
    """The first /v1/containers answer; NodeError if a child ends first."""
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer yet"
    while not stopping:
        ended = node.ended()
        if ended is not None:
            name, code = ended
            raise NodeError(f"the {name} ended with exit code {code} (its log is above)")
        try:
            resp = httpx.get(url + "/v1/containers", timeout=5)
            if resp.status_code == 200:
                body: dict[str, object] = resp.json()
                return body
            last = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as e:
            last = str(e) or type(e).__name__
        if time.monotonic() > deadline:
            raise NodeError(f"the exporter did not answer within {START_TIMEOUT:g}s: {last}")
        time.sleep(0.2)
    return {}


def hints(containers: int, euid: int) -> list[str]:
    """Why the answer may be thin, one line each."""
    out = []
    if euid != 0:
        out.append(
            "not running as root: only your own processes can be read, so containers of "
            "other users (containerd's and Docker's run as root) are missing; run it as root "
            "(sudo make run) to see them"
        )
    if containers == 0:
        out.append(
            "no containers found: this machine runs none that containerd, CRI-O, Docker or "
            "Podman started (they are found by their cgroups and the runtime's state); "
            "sudo make demo starts some"
        )
    return out


def banner(url: str, events: Path, meter_interval: float, body: dict[str, object]) -> str:
    items = body.get("containers")
    count = len(items) if isinstance(items, list) else 0
    lines = [
        "",
        f"runtime-insights node: extractor and exporter running, {count} containers found "
        "(Ctrl-C stops both)",
    ]
    width = max(len(url + path) for path, _ in ENDPOINTS) + 3
    for path, what in ENDPOINTS:
        flag = "-sN" if "events" in path else "-s "
        lines.append(f"  curl {flag} {url + path:<{width}}{what}")
    lines.append(
        f"usage events: {events} (one CloudEvent per pod every {meter_interval:g}s; tail -f it)"
    )
    lines += [f"note: {hint}" for hint in hints(count, os.geteuid())]
    return "\n".join(lines) + "\n"


def run_node(args: argparse.Namespace) -> int:
    """Exit 0 after Ctrl-C/SIGTERM stopped both; 2 when either could not start."""
    state = (args.state_dir or default_state_dir()).resolve()
    events = (args.events_file or state / "events.jsonl").resolve()
    try:
        (state / "meter").mkdir(parents=True, exist_ok=True)
        events.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"runtime-insights node: --state-dir {state}: {e.strerror}", file=sys.stderr)
        return 2
    if args.port == 0:  # any free port, chosen here so that the banner can name it
        with socket.socket() as probe:
            probe.bind((args.host, 0))
            args.port = probe.getsockname()[1]
    run_dir = tempfile.mkdtemp(prefix="ri-node-")  # short: a unix socket lives in it
    sock = os.path.join(run_dir, "extractor.sock")
    url = f"http://{args.host}:{args.port}"
    stopping: list[int] = []

    def on_signal(signum: int, _frame: types.FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = Node()
    try:
        node.spawn("extractor", _extractor_argv(args, sock))
        exporter = [sys.executable, "-m", "runtime_insights", "exporter"]
        node.spawn("exporter", exporter, exporter_environment(args, sock, state, events))
        body = _wait_ready(node, url, stopping)
        if not stopping:
            sys.stdout.write(banner(url, events, args.meter_interval, body))
            sys.stdout.flush()
        while not stopping:
            ended = node.ended()
            if ended is not None:
                raise NodeError(f"the {ended[0]} ended with exit code {ended[1]}")
            time.sleep(0.2)
        print("runtime-insights node: stopping the exporter and the extractor", file=sys.stderr)
    except NodeError as e:
        print(f"runtime-insights node: {e}", file=sys.stderr)
        return 2
    finally:
        node.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
