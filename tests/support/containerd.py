"""A real containerd for tests: the distribution's daemon, private to one test session.

Why not a fake: the extractor reads what containerd and runc leave on a node (task
bundles with CRI annotations, kubelet-style cgroup directories, processes in their own
PID and mount namespaces); only the real daemon shows what those look like.

API (import from ``tests.support.containerd``; pytest fixtures in ``tests/support/fixtures.py``):

``Containerd.start(tmp_dir) -> Containerd``
    Starts ``containerd`` with its own config, root, state, socket and runc root under
    ``tmp_dir`` (CRI plugin and network-needing plugins disabled). Attributes:
    ``address`` (socket path for ``ctr --address``), ``state_dir`` (containerd's state
    dir), ``task_root`` (``<state_dir>/io.containerd.runtime.v2.task``, what the
    extractor's ``--containerd-state`` takes), ``rootfs`` (a busybox rootfs: ``/bin/sh``,
    ``/bin/sleep``, ``/pause``), ``cgroup_prefix`` (``/ri-test-<uuid>``, the unique top
    of every cgroup this instance creates).

``Containerd.run_container(container_id, args, *, cgroup, annotations=None,
namespace="k8s.io", rootfs=None, mounts=()) -> int``
    ``ctr run -d --rootfs`` with OCI annotations and a cgroupfs ``cgroupsPath``; returns
    the container's init PID (host PID namespace).

``Containerd.run_pod(namespace, pod_name, containers, qos="burstable") -> ContainerdPod``
    A kubelet-style pod: a ``/pause`` sandbox plus one app container per
    ``containers[name] = argv``, each with containerd's CRI annotations, in
    ``<cgroup_prefix>/kubepods/<qos>/pod<uid>/<id>`` (guaranteed: no qos level).

``ContainerdPod``: ``namespace``, ``pod_name``, ``pod_uid``, ``qos``, ``sandbox_id``,
``containers`` (name → id, app containers only), ``pids`` (id → init PID, sandbox
included), ``pod_cgroup`` and ``cgroup_paths`` (id → cgroup path, host-absolute within
each v1 hierarchy and the v2 one), ``task_root``.

``Containerd.run_pod(…, sandbox=False)`` makes a pod without an infra process (as CRI-O
can run them): its cgroup empties whenever its only container does.
``Containerd.add_container(pod, name, argv) -> str`` starts one more container in the
pod (a restart: a new id under the same pod cgroup); ``remove_container(pod, cid)`` kills
and deletes it (runc then removes its cgroup); ``end_pod(pod)`` kills every task of the
pod and waits until the pod cgroup is empty; ``remove_pod(pod)`` deletes them and removes
the pod cgroup in every hierarchy, as the kubelet does; ``pod_cpu_ns(pod)`` reads the
pod cgroup's CPU counter where a pass reads it (v1 ``cpuacct`` when mounted, else v2).

``Containerd.close()`` kills and deletes every task and container, stops the daemon
and removes the cgroup tree; ``skip_reason()`` says why this machine cannot run it.

runc (1.1, cgroupfs driver, as ``ctr run --cgroup`` drives it) creates the given path in
every v1 hierarchy (cpu, cpuacct, memory, pids, …, name=systemd) and, on a hybrid host,
in the v2 hierarchy too: ``/proc/<pid>/cgroup`` then has a ``0::`` line with the same
path, like a kubelet-managed container's on such a node.

Fixtures (session-scoped, for tests under ``tests/integration``): ``containerd`` (the
daemon) and ``containerd_pod``, which runs ``default/ri-demo`` with containers ``app``
(sleeps) and ``burner`` (a CPU loop of fixed length, then sleeps, so it does not hog
the shared CPUs).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
START_TIMEOUT = 10.0
TOOLS = ("containerd", "ctr", "runc", "containerd-shim-runc-v2")
BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")

# The sandbox's process: a shell script named /pause, so its comm is "pause" like the
# real pause image's binary (busybox has no "pause" applet).
_PAUSE_SCRIPT = "#!/bin/sh\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n"
BURN_LOOPS = 300_000
"""Iterations of the burner's busy loop: a fraction of a CPU-second, then it sleeps."""

_DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
)


def skip_reason() -> str | None:
    """Why the real containerd cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (real containerd, cgroups)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian packages containerd, runc)"
    if _busybox() is None:
        return "missing static busybox (Debian package busybox-static)"
    if not os.path.isdir(os.path.join(CGROUP_ROOT, "cpuacct")) and not os.path.exists(
        os.path.join(CGROUP_ROOT, "cgroup.controllers")
    ):
        return "no cgroup hierarchy at /sys/fs/cgroup"
    return None


def _busybox() -> str | None:
    return next((p for p in BUSYBOX if os.path.isfile(p)), None)


def new_container_id() -> str:
    """A 64-hex id like the ones containerd's CRI plugin generates."""
    return secrets.token_hex(32)


@dataclass
class ContainerdPod:
    namespace: str
    pod_name: str
    pod_uid: str
    qos: str
    sandbox_id: str
    pod_cgroup: str
    task_root: str
    containers: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    cgroup_paths: dict[str, str] = field(default_factory=dict)


class ContainerdError(RuntimeError):
    """containerd or ctr failed; the message carries their output."""


class Containerd:
    """One private containerd daemon; see the module docstring for the API."""

    def __init__(self, base: str, process: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.address = os.path.join(base, "c.sock")
        self.state_dir = os.path.join(base, "state")
        self.task_root = os.path.join(self.state_dir, "io.containerd.runtime.v2.task")
        self.rootfs = os.path.join(base, "rootfs")
        self.runc_root = os.path.join(base, "runc")
        self.cgroup_prefix = f"/ri-test-{uuid.uuid4().hex[:12]}"
        self._process = process
        self._containers: list[tuple[str, str]] = []

    @classmethod
    def start(cls, base: str) -> Containerd:
        """Writes a config under ``base`` (keep it short: it holds unix sockets) and starts."""
        for sub in ("root", "state", "opt", "runc"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        _build_rootfs(os.path.join(base, "rootfs"))
        config = os.path.join(base, "config.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_config_toml(base))
        log = open(os.path.join(base, "containerd.log"), "wb")  # noqa: SIM115 - daemon's lifetime
        process = subprocess.Popen(
            ["containerd", "--config", config],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        daemon = cls(base, process)
        try:
            daemon._wait_ready()
        except BaseException:
            daemon.close()
            raise
        return daemon

    def ctr(self, *args: str, namespace: str = "k8s.io", check: bool = True) -> str:
        """Runs ``ctr`` against this daemon; raises ContainerdError with its output."""
        proc = subprocess.run(
            ["ctr", "--address", self.address, "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ContainerdError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def run_container(
        self,
        container_id: str,
        args: Sequence[str],
        *,
        cgroup: str,
        annotations: Mapping[str, str] | None = None,
        namespace: str = "k8s.io",
        rootfs: str | None = None,
        mounts: Sequence[str] = (),
    ) -> int:
        """Starts a detached task and returns its init PID; ``mounts`` are ``ctr run
        --mount`` specs (``type=bind,src=/usr,dst=/usr,options=rbind:ro``)."""
        pid_file = os.path.join(self.base, f"{container_id[:16]}.pid")
        flags = ["run", "-d", "--null-io", "--cgroup", cgroup, "--runc-root", self.runc_root]
        flags += ["--pid-file", pid_file]
        for mount in mounts:
            flags += ["--mount", mount]
        for key, value in (annotations or {}).items():
            flags += ["--annotation", f"{key}={value}"]
        self._containers.append((namespace, container_id))
        self.ctr(
            *flags, "--rootfs", rootfs or self.rootfs, container_id, *args, namespace=namespace
        )
        with open(pid_file, encoding="ascii") as f:
            return int(f.read().strip())

    def run_pod(
        self,
        namespace: str,
        pod_name: str,
        containers: Mapping[str, Sequence[str]],
        qos: str = "burstable",
        sandbox: bool = True,
    ) -> ContainerdPod:
        """A sandbox plus app containers, annotated and placed as containerd's CRI does."""
        pod_uid = str(uuid.uuid4())
        qos_dir = "" if qos == "guaranteed" else f"/{qos}"
        pod_cgroup = f"{self.cgroup_prefix}/kubepods{qos_dir}/pod{pod_uid}"
        sandbox_id = new_container_id()
        pod = ContainerdPod(
            namespace=namespace,
            pod_name=pod_name,
            pod_uid=pod_uid,
            qos=qos,
            sandbox_id=sandbox_id,
            pod_cgroup=pod_cgroup,
            task_root=self.task_root,
        )
        common = {
            "io.kubernetes.cri.sandbox-id": sandbox_id,
            "io.kubernetes.cri.sandbox-namespace": namespace,
            "io.kubernetes.cri.sandbox-name": pod_name,
            "io.kubernetes.cri.sandbox-uid": pod_uid,
        }
        if sandbox:
            sandbox_annotations = {**common, "io.kubernetes.cri.container-type": "sandbox"}
            pod.cgroup_paths[sandbox_id] = f"{pod_cgroup}/{sandbox_id}"
            pod.pids[sandbox_id] = self.run_container(
                sandbox_id,
                ["/pause"],
                cgroup=pod.cgroup_paths[sandbox_id],
                annotations=sandbox_annotations,
            )
        for name, argv in containers.items():
            self.add_container(pod, name, argv)
        return pod

    def add_container(self, pod: ContainerdPod, name: str, argv: Sequence[str]) -> str:
        """One more app container in ``pod`` (a restart when ``name`` ran before)."""
        container_id = new_container_id()
        annotations = {
            "io.kubernetes.cri.sandbox-id": pod.sandbox_id,
            "io.kubernetes.cri.sandbox-namespace": pod.namespace,
            "io.kubernetes.cri.sandbox-name": pod.pod_name,
            "io.kubernetes.cri.sandbox-uid": pod.pod_uid,
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": name,
            "io.kubernetes.cri.image-name": "docker.io/library/busybox:1.35",
        }
        pod.cgroup_paths[container_id] = f"{pod.pod_cgroup}/{container_id}"
        pod.pids[container_id] = self.run_container(
            container_id, argv, cgroup=pod.cgroup_paths[container_id], annotations=annotations
        )
        pod.containers[name] = container_id
        return container_id

    def remove_container(self, pod: ContainerdPod, container_id: str) -> None:
        """Kill and delete one container; runc removes its cgroup."""
        self.ctr("task", "rm", "-f", container_id, check=False)
        self.ctr("container", "rm", container_id, check=False)
        pod.pids.pop(container_id, None)
        pod.cgroup_paths.pop(container_id, None)
        self._containers = [c for c in self._containers if c[1] != container_id]

    def end_pod(self, pod: ContainerdPod, timeout: float = 20.0) -> None:
        """Kill every task of ``pod`` and wait until its cgroup has no process left."""
        for container_id in list(pod.pids):
            self.ctr("task", "kill", "-s", "SIGKILL", container_id, check=False)
        events = f"{CGROUP_ROOT}/unified{pod.pod_cgroup}/cgroup.events"
        procs = f"{CGROUP_ROOT}/cpuacct{pod.pod_cgroup}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(events):
                with open(events, encoding="ascii") as f:
                    if "populated 0" in f.read():
                        return
            elif not _has_processes(procs):
                return
            time.sleep(0.01)
        raise ContainerdError(f"pod {pod.pod_name} still has processes after {timeout}s")

    def remove_pod(self, pod: ContainerdPod) -> None:
        """Delete the pod's tasks and containers and remove its cgroup everywhere."""
        for container_id in list(pod.pids):
            self.remove_container(pod, container_id)
        _remove_cgroup_tree(pod.pod_cgroup)

    def pod_cpu_ns(self, pod: ContainerdPod) -> int:
        """The pod cgroup's CPU counter where a pass reads it."""
        v1 = f"{CGROUP_ROOT}/cpuacct{pod.pod_cgroup}/cpuacct.usage"
        if os.path.exists(v1):
            with open(v1, encoding="ascii") as f:
                return int(f.read())
        with open(f"{CGROUP_ROOT}{pod.pod_cgroup}/cpu.stat", encoding="ascii") as f:
            return int(f.readline().split()[1]) * 1000

    def close(self) -> None:
        """Tears everything down; safe to call twice and after a failed start."""
        for namespace, container_id in reversed(self._containers):
            if self._process.poll() is None:
                self.ctr("task", "rm", "-f", container_id, namespace=namespace, check=False)
                self.ctr("container", "rm", container_id, namespace=namespace, check=False)
        self._containers.clear()
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        _remove_cgroup_tree(self.cgroup_prefix)

    def _answers(self) -> bool:
        probe = ["ctr", "--address", self.address, "version"]
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if os.path.exists(self.address) and self._answers():
                return
            time.sleep(0.05)
        with open(
            os.path.join(self.base, "containerd.log"), encoding="utf-8", errors="replace"
        ) as f:
            log = f.read()[-4000:]
        raise ContainerdError(f"containerd did not come up within {START_TIMEOUT}s:\n{log}")


def _config_toml(base: str) -> str:
    disabled = ", ".join(f'"{p}"' for p in _DISABLED_PLUGINS)
    return (
        "version = 2\n"
        f'root = "{base}/root"\n'
        f'state = "{base}/state"\n'
        f"disabled_plugins = [{disabled}]\n"
        "[grpc]\n"
        f'  address = "{base}/c.sock"\n'
        "[ttrpc]\n"
        f'  address = "{base}/c.sock.ttrpc"\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{base}/opt"\n'
    )


def _build_rootfs(rootfs: str) -> None:
    """A minimal static rootfs: busybox with sh and sleep, and a /pause sleeper."""
    busybox = _busybox()
    if busybox is None:
        raise ContainerdError("busybox-static is not installed")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    for sub in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in ("sh", "sleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    pause = os.path.join(rootfs, "pause")
    with open(pause, "w", encoding="ascii") as f:
        f.write(_PAUSE_SCRIPT)
    os.chmod(pause, 0o755)


def burner_argv(loops: int = BURN_LOOPS) -> list[str]:
    """A container command that burns a bounded amount of CPU, then sleeps."""
    loop = f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done; exec sleep 100000"
    return ["/bin/sh", "-c", loop]


def _has_processes(directory: str) -> bool:
    try:
        with open(f"{directory}/cgroup.procs", encoding="ascii") as f:
            return bool(f.read().strip())
    except FileNotFoundError:
        return False


def _remove_cgroup_tree(prefix: str) -> None:
    """rmdir the test's cgroup tree bottom-up in every hierarchy (v1 controllers and v2)."""
    try:
        hierarchies = [os.path.join(CGROUP_ROOT, h) for h in os.listdir(CGROUP_ROOT)]
    except OSError:
        return
    hierarchies.append(CGROUP_ROOT)
    for hierarchy in hierarchies:
        top = hierarchy + prefix
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            for _ in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # a killed task can take a moment to leave it
