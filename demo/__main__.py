"""``python -m demo`` (``sudo make demo``): start everything, show it, check it, stop it.

Exit 0 when the exporter's answers and the usage events show what the workloads did, 1
when they do not (the report says what is missing), 2 when the machine cannot run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from demo import report
from demo.workloads import (
    Kubelet,
    Workload,
    host_rootfs,
    missing_binaries,
    pod_object,
    sample_workloads,
    start_pod,
)
from tests.support.apiserver import FakeApiServer
from tests.support.containerd import Containerd, skip_reason

NODE = "demo-node"
POLL_SECONDS = 1
METER_SECONDS = 10
WAIT_SECONDS = 75.0
OUT = Path(".demo")
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:5.1f}s] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ApiServer:
    """The fake API server on an event loop of its own (the demo itself is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.api = FakeApiServer(bookmark_interval=1.0)
        asyncio.run_coroutine_threadsafe(self.api.__aenter__(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def until(
    what: str,
    check: Callable[[], Any],
    procs: dict[str, subprocess.Popen[bytes]],
    missing: Callable[[], str] = lambda: "",
) -> Any:
    """``check()``'s first true answer; RuntimeError when a process ends or time is up
    (saying what ``missing()`` says is still missing)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"the {name} ended with exit code {p.returncode}")
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            still = missing()
            raise RuntimeError(f"gave up waiting for {what}" + (f": {still}" if still else ""))
        time.sleep(0.5)


def read_events(path: Path, workloads: list[Workload]) -> list[dict[str, Any]]:
    """The events of the demo's pods (the machine may run others: they are billed too)."""
    if not path.exists():
        return []
    uids = {w.pod_uid for w in workloads}
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["data"].get("pod_uid") in uids]


def preflight() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it starts a private containerd and containers (sudo make demo)"
    reason = skip_reason()
    if reason is not None:
        return reason
    missing = missing_binaries() + [t for t in ("curl",) if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (make demo installs them: scripts/demo-packages.txt)"
    return None


def run(stack: ExitStack, base: str) -> int:
    OUT.mkdir(exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    events_file = (OUT / "events.jsonl").resolve()
    cli = [sys.executable, "-m", "runtime_insights"]

    say(f"starting a private containerd (root, state and socket under {base})")
    daemon = Containerd.start(base)
    stack.callback(daemon.close)
    say("starting the fake API server")
    api = ApiServer()
    stack.callback(api.close)
    kubeconfig = api.api.write_kubeconfig(Path(base, "kubeconfig"))

    say("starting the extractor (runtime-insights extractor serve)")
    sock = os.path.join(base, "extractor.sock")
    extractor = spawn(
        [*cli, "extractor", "serve", "--socket", sock, "--containerd-state", daemon.task_root],
        Path(base, "extractor.log"),
    )
    stack.callback(stop, extractor)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
    env.update(
        RUNTIME_INSIGHTS_HOST="127.0.0.1",
        RUNTIME_INSIGHTS_PORT=str(port),
        RUNTIME_INSIGHTS_EXTRACTOR_SOCKET=sock,
        RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS=str(POLL_SECONDS),
        RUNTIME_INSIGHTS_KUBECONFIG=str(kubeconfig),
        RUNTIME_INSIGHTS_NODE_NAME=NODE,
        RUNTIME_INSIGHTS_WATCH_TIMEOUT_SECONDS="30",
        RUNTIME_INSIGHTS_API_READ_TIMEOUT_SECONDS="40",
        RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS=str(METER_SECONDS),
        RUNTIME_INSIGHTS_METER_SPOOL_DIR=os.path.join(base, "meter"),
        RUNTIME_INSIGHTS_METER_SINK="file",
        RUNTIME_INSIGHTS_METER_FILE=str(events_file),
    )
    while not os.path.exists(sock):
        if extractor.poll() is not None:
            raise RuntimeError(f"the extractor ended: {Path(base, 'extractor.log').read_text()}")
        time.sleep(0.1)
    say(f"starting the exporter on {url} (API server: the fake; events: {events_file})")
    exporter = spawn([*cli, "exporter"], Path(base, "exporter.log"), env)
    stack.callback(stop, exporter)
    procs = {"extractor": extractor, "exporter": exporter}
    until("the exporter", lambda: _get(url + "/healthz") is not None, procs)
    sse = subprocess.Popen(
        ["curl", "-sN", url + "/v1/events"],
        stdout=(OUT / "v1-events.txt").open("wb"),
        stderr=subprocess.DEVNULL,
    )
    stack.callback(sse.terminate)

    workloads = sample_workloads()
    root = host_rootfs(base)

    def publish(w: Workload) -> None:
        obj = pod_object(w, NODE)
        try:
            api.api.update_pod(obj)
        except KeyError:
            api.api.add_pod(obj)

    for w in workloads:
        start_pod(daemon, w, root)
        publish(w)
        say(f"started {w.namespace}/{w.pod} ({w.container}: {' '.join(w.argv[:2])} …)")
    kubelet = Kubelet(daemon, workloads, root, publish)
    kubelet.start()
    stack.callback(kubelet.stop)

    def fingerprinted() -> dict[str, Any] | None:
        body = _get(url + "/v1/containers")
        if body is None or body.get("metadataSource") != "api":
            return None
        kinds = {
            (c["namespace"], c["pod"]): (c.get("fingerprint") or {}).get("kind")
            for c in body["containers"]
        }
        serving = [w for w in workloads if w.behaviour == "serve"]
        return body if all(kinds.get((w.namespace, w.pod)) == w.kind for w in serving) else None

    until("fingerprints of the Go, Java and Python workloads", fingerprinted, procs)
    say("every workload is fingerprinted; waiting for usage windows to close")

    job = next(w for w in workloads if w.behaviour == "job")

    def unbilled() -> str:
        events = read_events(events_file, workloads)
        pods = {e["data"]["pod_name"] for e in events}
        if job.pod in pods and not any(
            e["data"]["pod_name"] == job.pod and e["data"]["cpu_ns"] > 0 for e in events
        ):
            pods.discard(job.pod)
        return ", ".join(w.pod for w in workloads if w.pod not in pods)

    until("a usage event for every pod", lambda: not unbilled(), procs, unbilled)
    flaky = next(w for w in workloads if w.behaviour == "crash")

    def restarted() -> dict[str, Any] | None:
        body = _get(url + "/v1/containers")
        hit = [
            c
            for c in (body or {}).get("containers", [])
            if c["pod"] == flaky.pod and c.get("restarts", 0) >= 2
        ]
        return body if hit else None

    body = until("the crash loop's container back after two restarts", restarted, procs)
    answers = {
        "v1-containers.json": "/v1/containers",
        "v1-pods.json": "/v1/pods",
        "gather_runtime_info.json": "/gather_runtime_info",
    }
    for name, path in answers.items():
        (OUT / name).write_text(json.dumps(_get(url + path), indent=2) + "\n")
    (OUT / "metrics.txt").write_text(httpx.get(url + "/metrics", timeout=30).text)
    time.sleep(0.5)
    sse.terminate()
    sse.wait(5)
    events = read_events(events_file, workloads)
    print()
    print(f"== what the exporter answers: curl -s {url}/v1/containers")
    print(report.containers_table(body, workloads))
    print(report.legend(report.CONTAINER_COLUMNS, ".containers[]"))
    print(
        f"  e.g. curl -s {url}/v1/containers | jq '.containers[] | "
        "{pod, container, kind: .fingerprint.kind, cpu: .cpu.totalSeconds}'"
    )
    print(f"(the job {workloads[3].pod} ended: its usage is in the events below)")
    print()
    print(f"== usage events written to {events_file} (one CloudEvent per pod and window)")
    print(report.events_table(events))
    print(report.legend(report.EVENT_COLUMNS, "line"))
    print()
    counts = report.lifecycle_counts((OUT / "v1-events.txt").read_text())
    print(
        "== lifecycle feed (curl -N /v1/events): "
        + ", ".join(f"{n} {kind} of {name}" for (kind, name), n in sorted(counts.items()))
    )
    print(f"full answers in {OUT}/: " + ", ".join(sorted(p.name for p in OUT.iterdir())))
    problems = report.check(body, events, (OUT / "v1-events.txt").read_text(), workloads)
    problems += kubelet.errors
    print()
    if problems:
        print("== check FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(
        "== check ok: every workload named by the API server with its owner and subject, "
        "the Go, Java and Python runtimes fingerprinted, the crash loop's restarts and the "
        "job's end on the lifecycle feed, every pod billed"
    )
    return 0


def _get(url: str) -> dict[str, Any] | None:
    try:
        resp = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    body: dict[str, Any] = resp.json()
    return body


def main() -> int:
    reason = preflight()
    if reason is not None:
        print(f"make demo: {reason}", file=sys.stderr)
        return 2
    base = tempfile.mkdtemp(prefix="ri-demo-", dir="/tmp")  # short: sockets live in it
    try:
        with ExitStack() as stack:
            code = run(stack, base)
            say("stopping everything the demo started")
    except RuntimeError as e:
        print(f"make demo: {e}", file=sys.stderr)
        for log in ("extractor.log", "exporter.log"):
            path = Path(base, log)
            if path.exists():
                print(f"--- {log} (last lines)\n{path.read_text()[-2000:]}", file=sys.stderr)
        code = 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    say(f"done in {time.monotonic() - T0:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
