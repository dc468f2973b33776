"""What the benches stand on: a synthetic kubelet-shaped node, a static pod API, a Tomcat base.

The benches measure the product, so they carry their own small harness instead of the
tests' support code (tests/support/): a bench must keep running whatever the tests
refactor, and a test fake's extra behaviour (faults, reviews, port-forward) is not what a
bench wants to measure against.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiohttp import web

CGROUP_ROOT = "/sys/fs/cgroup"
HYBRID = {c: f"{CGROUP_ROOT}/{c}" for c in ("cpu", "cpuacct", "memory", "pids", "blkio")} | {
    "": f"{CGROUP_ROOT}/unified"
}
"""The v1 controllers and the cgroup2 hierarchy of this machine's hybrid layout: the
kubelet creates every pod cgroup in all of them."""


def container_id() -> str:
    return secrets.token_hex(32)


def pod_uid() -> str:
    return str(uuid.uuid4())


class SyntheticNode:
    """Burstable pods and containers named as the kubelet's cgroupfs driver names them,
    under a unique top directory so that concurrent runs and real pods never meet."""

    def __init__(self, mounts: dict[str, str] | None = None) -> None:
        self.mounts = mounts or HYBRID
        self.prefix = f"/ri-bench-{uuid.uuid4().hex[:12]}"
        self._made: list[str] = []

    def pod_path(self, uid: str) -> str:
        return f"{self.prefix}/kubepods/burstable/pod{uid}"

    def container_path(self, uid: str, cid: str) -> str:
        return f"{self.pod_path(uid)}/{cid}"

    def enter(self, path: str, pid: int) -> None:
        """Move ``pid`` into ``path`` in every hierarchy (created as needed)."""
        self.make(path)
        for mount in self.mounts.values():
            with open(f"{mount}{path}/cgroup.procs", "w") as f:
                f.write(str(pid))

    def make(self, path: str) -> None:
        """mkdir -p ``path`` in every hierarchy, remembering what to remove."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if sub not in self._made:
                for mount in self.mounts.values():
                    os.makedirs(mount + sub, exist_ok=True)
                self._made.append(sub)

    def run_short(self, path: str, loops: int) -> None:
        """A short process born in ``path``: it joins every hierarchy, spends a little CPU
        and exits (a pod whose only container ends, as a Job's does)."""
        self.make(path)
        procs = [f"{mount}{path}/cgroup.procs" for mount in self.mounts.values()]
        script = (
            'for f in "$@"; do echo $$ > "$f"; done; '
            f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done"
        )
        subprocess.run(["sh", "-c", script, "sh", *procs], check=True)

    def remove(self, path: str) -> None:
        """rmdir ``path`` and everything below it, killing what still lives there."""
        below = [p for p in self._made if p == path or p.startswith(path + "/")]
        for sub in sorted(below, key=len, reverse=True):
            for mount in self.mounts.values():
                _rmdir(mount + sub)
            self._made.remove(sub)

    def cleanup(self) -> None:
        self.remove(self.prefix)

    def populate(self, pods: int, app_processes: int = 7) -> Population:
        """``pods`` kubelet-shaped pods: a pause sandbox (one process whose comm is
        ``pause``) and an app container of ``app_processes`` sleeping processes each.

        The processes are ``sleep`` itself, not forks of the bench: a few hundred KiB
        each, so a 1,000-container node (4,000 processes) fits beside anything else.
        """
        population = Population(self)
        try:
            for _ in range(pods):
                uid = pod_uid()
                pause = population.spawn(pause=True)
                self.enter(self.container_path(uid, container_id()), pause)
                app = self.container_path(uid, container_id())
                for _ in range(app_processes):
                    self.enter(app, population.spawn())
                population.pods.append(uid)
        except BaseException:
            population.stop()
            raise
        return population


class Population:
    """The sleeping processes of a ``SyntheticNode.populate``; ``stop`` kills them all
    and removes the node's cgroups."""

    def __init__(self, node: SyntheticNode) -> None:
        self.node = node
        self.pods: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._bin = Path(tempfile.mkdtemp(prefix="ri-bench-bin-"))
        sleep = shutil.which("sleep") or "/bin/sleep"
        # comm is the name execve was given: a link named pause makes a "pause" process
        (self._bin / "pause").symlink_to(sleep)
        self._sleep = sleep

    @property
    def containers(self) -> int:
        return 2 * len(self.pods)

    def spawn(self, *, pause: bool = False) -> int:
        program = str(self._bin / "pause") if pause else self._sleep
        proc = subprocess.Popen([program, "infinity"], stdin=subprocess.DEVNULL, close_fds=True)
        self.processes.append(proc)
        return proc.pid

    def stop(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in self.processes:
            proc.wait()
        self.processes.clear()
        self.node.cleanup()
        shutil.rmtree(self._bin, ignore_errors=True)


def remove_cgroup(path: str) -> None:
    """rmdir a cgroup directory (its children must be gone), killing what still runs in it."""
    _rmdir(path)


def _rmdir(path: str) -> None:
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            with contextlib.suppress(OSError), open(f"{path}/cgroup.procs") as f:
                for pid in f.read().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.01)


class StaticPodApi:
    """An API server that knows a fixed set of pods: LIST answers them, WATCH stays open
    sending a bookmark now and then, as a quiet cluster's does. Enough for the exporter's
    pod reflector, which is all a bench of the exporter needs."""

    def __init__(self, pods: list[dict[str, object]], *, bookmark_seconds: float = 5.0) -> None:
        self._list = orjson.dumps(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": pods,
            }
        )
        self._bookmark_seconds = bookmark_seconds
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> StaticPodApi:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def write_kubeconfig(self, path: Path) -> Path:
        server = f"http://127.0.0.1:{self.port}"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
            f"clusters: [{{name: bench, cluster: {{server: '{server}'}}}}]\n"
            "users: [{name: bench, user: {token: bench}}]\n"
            "contexts: [{name: bench, context: {cluster: bench, user: bench}}]\n"
        )
        return path

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") not in ("true", "1"):
            return web.Response(body=self._list, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        timeout = float(request.query.get("timeoutSeconds", "300"))
        deadline = time.monotonic() + timeout
        bookmark = {
            "type": "BOOKMARK",
            "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}},
        }
        with contextlib.suppress(ConnectionResetError):  # the reflector stopped watching
            while time.monotonic() < deadline:
                await response.write(orjson.dumps(bookmark) + b"\n")
                await asyncio.sleep(min(self._bookmark_seconds, deadline - time.monotonic()))
        return response


TOMCAT_SERVER_XML = (
    '<Server port="-1" shutdown="SHUTDOWN"><Service name="Catalina">'
    '<Connector port="0" address="127.0.0.1" protocol="HTTP/1.1"/>'
    '<Engine name="Catalina" defaultHost="localhost">'
    '<Host name="localhost" appBase="webapps" autoDeploy="false"/>'
    "</Engine></Service></Server>"
)


def catalina_base(base: Path) -> Path:
    """A CATALINA_BASE for Debian's Tomcat with no shutdown port and an ephemeral loopback
    connector, so that a bench can run one beside anything else."""
    for sub in ("conf", "logs", "temp", "webapps"):
        (base / sub).mkdir(parents=True)
    (base / "conf/server.xml").write_text(TOMCAT_SERVER_XML)
    return base


def running_pod(
    name: str,
    namespace: str,
    uid: str,
    container_id: str,
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
    replica_set: str,
    node: str = "node-a",
) -> dict[str, object]:
    """A one-container Running pod as the API server returns it, owned by a ReplicaSet."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    image = "registry.example/app:1.2.3"
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": now,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": replica_set,
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": image}]},
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.2",
            "podIP": "10.244.0.5",
            "qosClass": "BestEffort",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "app",
                    "image": image,
                    "imageID": f"{image}@sha256:{'0' * 64}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                    "containerID": f"containerd://{container_id}",
                }
            ],
        },
    }


INGEST_SERVER = """
import sys
import orjson
from aiohttp import web
seen = set()
async def ingest(request):
    for event in orjson.loads(await request.read()):
        seen.add((event["source"], event["id"]))
    return web.Response(status=204)
async def count(request):
    return web.json_response({"events": len(seen)})
async def reset(request):
    seen.clear()
    return web.Response(status=204)
app = web.Application(client_max_size=64 << 20)
app.router.add_post("/api/v1/events", ingest)
app.router.add_get("/count", count)
app.router.add_post("/reset", reset)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class IngestServer:
    """A stand-in for OpenMeter's ingest endpoint in a process of its own: it parses
    every batch, keeps the (source, id) pairs it saw and answers 204, and nothing else,
    so a bench measures the sender, not a fake's validation."""

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> IngestServer:
        import socket
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._process = subprocess.Popen([sys.executable, "-c", INGEST_SERVER, str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return self
            time.sleep(0.05)
        raise RuntimeError("the ingest server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None
