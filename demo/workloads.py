"""The demo's sample workloads: kubelet-shaped pods in a private containerd, and what the
fake API server says about them.

Why these five: each shows something the agent does. A Go server, a Java program and a
Python server are fingerprinted from the outside (their roots bind-mount this machine's
``/usr``, so Debian's Go binary ``webhook``, its OpenJDK and its Python run in them). A
short-lived job ends between two usage windows and is billed all the same (the exit
watcher's tombstone). A crash-looping container is restarted under the same pod, as the
kubelet does, and its restarts show in the answer and on the lifecycle feed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tests.support.apiserver import FakeContainer, make_pod
from tests.support.containerd import Containerd, new_container_id

APPS = Path(__file__).resolve().parent / "apps"
HOST_BINARIES = {"Go": "/usr/bin/webhook", "Java": "/usr/bin/java", "Python": "/usr/bin/python3"}
HOST_MOUNTS = ("/usr", "/etc/java-17-openjdk", "/etc/alternatives")
"""What the workloads' root borrows from this machine, read-only."""
SUBJECT = "openmeter.io/subject"
JOB_LOOPS = 400_000
CRASH_LOOPS = 80_000
CRASH_BACKOFF_SECONDS = 1.0

Behaviour = Literal["serve", "job", "crash"]


@dataclass
class Workload:
    namespace: str
    pod: str
    container: str
    argv: list[str]
    owner: tuple[str, str]
    labels: dict[str, str]
    subject: str
    image: str
    kind: str | None
    """The fingerprint's ``kind`` the demo expects (None: a busybox shell, no runtime)."""
    behaviour: Behaviour = "serve"
    host_root: bool = True
    # filled in when started
    pod_uid: str = ""
    sandbox_id: str = ""
    container_id: str = ""
    pid: int = 0
    restarts: int = 0
    ended: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def sample_workloads() -> list[Workload]:
    busy = "i=0; while [ $i -lt {n} ]; do i=$((i+1)); done"
    return [
        Workload(
            "shop", "web-5d9c7b8f4-q2x7m", "web",
            ["/usr/bin/webhook", "-hooks", "/app/hooks.json", "-ip", "127.0.0.1", "-port", "9000"],
            ("ReplicaSet", "web-5d9c7b8f4"), {"app": "web", "pod-template-hash": "5d9c7b8f4"},
            "customer-acme", "docker.io/adnanh/webhook:2.8.0", "Golang",
        ),
        Workload(
            "shop", "orders-0", "orders",
            ["/usr/bin/java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.io.tmpdir=/tmp", "/app/Orders.java"],
            ("StatefulSet", "orders"), {"app": "orders"},
            "customer-globex", "docker.io/library/eclipse-temurin:17-jre", "Java",
        ),
        Workload(
            "shop", "api-7f6b8c9d5-m4k8z", "api",
            ["/usr/bin/python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
            ("ReplicaSet", "api-7f6b8c9d5"), {"app": "api", "pod-template-hash": "7f6b8c9d5"},
            "customer-acme", "docker.io/library/python:3.11-slim", "Python",
        ),
        Workload(
            "batch", "report-8x2kq", "report",
            ["/bin/sh", "-c", "sleep 2; " + busy.format(n=JOB_LOOPS) + "; exit 0"],
            ("Job", "report"), {"job-name": "report"},
            "customer-initech", "docker.io/library/busybox:1.36", None, "job", host_root=False,
        ),
        Workload(
            "batch", "flaky-6c8d9f7b5-x9p2w", "worker",
            ["/bin/sh", "-c", "sleep 3; " + busy.format(n=CRASH_LOOPS) + "; exit 1"],
            ("ReplicaSet", "flaky-6c8d9f7b5"), {"app": "flaky", "pod-template-hash": "6c8d9f7b5"},
            "customer-initech", "docker.io/library/busybox:1.36", None, "crash", host_root=False,
        ),
    ]  # fmt: skip


def missing_binaries() -> list[str]:
    return [f"{what} ({path})" for what, path in HOST_BINARIES.items() if not os.path.exists(path)]


def host_rootfs(base: str) -> str:
    """A root whose ``/usr`` (and the JRE's configuration) is this machine's, bind-mounted
    read-only, with Debian's merged-/usr links, its own /etc/os-release and /app."""
    root = os.path.join(base, "host-root")
    for sub in ("proc", "dev", "sys", "tmp", "etc", "app", *HOST_MOUNTS):
        os.makedirs(root + sub if sub.startswith("/") else os.path.join(root, sub), exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.exists(f"/usr/{link}") and not os.path.lexists(os.path.join(root, link)):
            os.symlink(f"usr/{link}", os.path.join(root, link))
    shutil.copy("/etc/os-release", os.path.join(root, "etc", "os-release"))
    for app in APPS.iterdir():
        shutil.copy(app, os.path.join(root, "app", app.name))
    return root


def _bind_mounts() -> list[str]:
    return [f"type=bind,src={m},dst={m},options=rbind:ro" for m in HOST_MOUNTS if os.path.exists(m)]


def _annotations(w: Workload, container_type: str) -> dict[str, str]:
    out = {
        "io.kubernetes.cri.sandbox-id": w.sandbox_id,
        "io.kubernetes.cri.sandbox-namespace": w.namespace,
        "io.kubernetes.cri.sandbox-name": w.pod,
        "io.kubernetes.cri.sandbox-uid": w.pod_uid,
        "io.kubernetes.cri.container-type": container_type,
    }
    if container_type == "container":
        out["io.kubernetes.cri.container-name"] = w.container
        out["io.kubernetes.cri.image-name"] = w.image
    return out


def _pod_cgroup(daemon: Containerd, w: Workload) -> str:
    return f"{daemon.cgroup_prefix}/kubepods/burstable/pod{w.pod_uid}"


def _run_app(daemon: Containerd, w: Workload, host_root: str) -> None:
    w.container_id = new_container_id()
    w.pid = daemon.run_container(
        w.container_id,
        w.argv,
        cgroup=f"{_pod_cgroup(daemon, w)}/{w.container_id}",
        annotations=_annotations(w, "container"),
        rootfs=host_root if w.host_root else daemon.rootfs,
        mounts=_bind_mounts() if w.host_root else (),
    )
    w.started_at = datetime.now(UTC)


def start_pod(daemon: Containerd, w: Workload, host_root: str) -> None:
    """A pause sandbox and the app container, placed and annotated as containerd's CRI
    plugin does for the kubelet."""
    w.pod_uid = str(uuid.uuid4())
    w.sandbox_id = new_container_id()
    daemon.run_container(
        w.sandbox_id,
        ["/pause"],
        cgroup=f"{_pod_cgroup(daemon, w)}/{w.sandbox_id}",
        annotations=_annotations(w, "sandbox"),
    )
    _run_app(daemon, w, host_root)


def pod_object(w: Workload, node: str) -> dict[str, Any]:
    """The Pod the API server would return for ``w`` now."""
    state = "running"
    if w.ended:
        state = "terminated"
    container = FakeContainer(
        w.container,
        image=w.image,
        state=state,
        container_id=w.container_id,
        restart_count=w.restarts,
        started_at=w.started_at,
        exit_code=0,
        requests={"cpu": "100m", "memory": "64Mi"},
    )
    pod = make_pod(
        w.pod,
        w.namespace,
        uid=w.pod_uid,
        node=node,
        containers=[container],
        labels=w.labels,
        annotations={SUBJECT: w.subject},
        owner=w.owner,
        phase="Succeeded" if w.ended else "Running",
    )
    if w.behaviour == "job":
        pod["spec"]["restartPolicy"] = "Never"
    return pod


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


class Kubelet:
    """What the kubelet would do for the job and the crash loop, in a thread: a job whose
    container exited ends its pod (the sandbox is stopped, so the pod cgroup empties);
    a container that crashed is removed and started again under the same pod after a
    back-off. Each change is published to the fake API server through ``update``."""

    def __init__(
        self,
        daemon: Containerd,
        workloads: list[Workload],
        host_root: str,
        update: Callable[[Workload], None],
    ) -> None:
        self._daemon = daemon
        self._workloads = [w for w in workloads if w.behaviour != "serve"]
        self._host_root = host_root
        self._update = update
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-kubelet", daemon=True)
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for w in self._workloads:
                if w.ended or _alive(w.pid):
                    continue
                try:
                    self._exited(w)
                except Exception as e:  # keep the demo going; the report shows it
                    self.errors.append(f"{w.pod}: {e}")
                    w.ended = True

    def _exited(self, w: Workload) -> None:
        ctr = self._daemon.ctr
        if w.behaviour == "job":
            w.ended = True
            self._update(w)
            ctr("task", "kill", "-s", "SIGKILL", w.sandbox_id, check=False)
            return
        ctr("task", "rm", "-f", w.container_id, check=False)
        ctr("container", "rm", w.container_id, check=False)
        time.sleep(CRASH_BACKOFF_SECONDS)
        if self._stop.is_set():
            w.ended = True
            return
        w.restarts += 1
        _run_app(self._daemon, w, self._host_root)
        self._update(w)
