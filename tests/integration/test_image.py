"""The image `make image` builds, run as the DaemonSet runs it.

scripts/build-image.sh builds the archive (without a daemon or a base image), the test's
private containerd imports it with `ctr images import`, and the extractor and the exporter
run from it in containers whose OCI specs are made from manifests/base/daemonset.yaml:
the same users, read-only root filesystems, exactly the capabilities it grants (none for
the exporter), no new privileges, the host PID namespace for the extractor, the socket in
a shared directory, the host paths it names mounted read-only at the paths it names.
Deliberate differences: both share the host's network namespace (the fake API server
listens on 127.0.0.1), the exporter reaches it through a mounted kubeconfig instead of
in-cluster credentials (the fake speaks plain HTTP), and no seccomp profile is loaded.

The workload: a pod of busybox containers (app, burner) and one container running the
image's own Debian python. The exporter must answer /v1/containers with them, named by
the API, fingerprinted exactly as the extractor run fully privileged on the host sees them.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import ssl
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from extractor.commands.serve import snapshot_taker
from extractor.contract import fingerprint_fields
from extractor.fingerprinting import Fingerprints
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner
from tests.integration.test_exporter_e2e import NODE, READER_TOKEN, _start_api
from tests.support.apiserver import FakeApiServer
from tests.support.certs import make_ca, make_cert
from tests.support.containerd import (
    Containerd,
    ContainerdPod,
    burner_argv,
    new_container_id,
    skip_reason,
)

pytestmark = [pytest.mark.root, pytest.mark.containerd]

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "https://example.invalid/runtime-insights.git"
WAIT = 90.0
Obj = dict[str, Any]

# What runc mounts into every container (containerd's defaults, kubelet's too).
_BASE_MOUNTS: list[Obj] = [
    {"destination": dest, "type": kind, "source": kind, "options": options.split(",")}
    for dest, kind, options in (
        ("/proc", "proc", "nosuid,noexec,nodev"),
        ("/dev", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"),
        ("/dev/pts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("/dev/shm", "tmpfs", "nosuid,noexec,nodev,mode=1777,size=65536k"),
        ("/dev/mqueue", "mqueue", "nosuid,noexec,nodev"),
        ("/sys", "sysfs", "nosuid,noexec,nodev,ro"),
    )
]
_MASKED = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
           "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]  # fmt: skip
_READONLY = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def _image_skip_reason() -> str | None:
    reason = skip_reason()
    if reason is not None:
        return reason
    subprocess.run(
        [ROOT / "scripts" / "system-deps.sh", ROOT / "scripts" / "image-packages.txt"],
        capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    missing = [t for t in ("mmdebstrap", "umoci") if shutil.which(t) is None]
    if missing:
        return f"cannot install {', '.join(missing)} (Debian packages; make image-deps)"
    return None


CONTAINERD_SOFT = 1024
CONTAINERD_HARD = min(524288, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
"""RLIMIT_NOFILE of a container under containerd 2 as systemd starts it (1024:524288),
the hard limit no higher than the test's own (runc cannot raise it here)."""


def _pod_spec() -> Obj:
    daemonset = yaml.safe_load((ROOT / "manifests" / "base" / "daemonset.yaml").read_text())
    return dict(daemonset["spec"]["template"]["spec"])


def _container(pod: Obj, name: str) -> Obj:
    (found,) = [c for c in [*pod["containers"], *pod["initContainers"]] if c["name"] == name]
    return dict(found)


def oci_spec(
    pod: Obj,
    container: Obj,
    *,
    image_config: Obj,
    rootfs: str,
    volumes: dict[str, str],
    env: dict[str, str],
    cgroup: str,
    extra_mounts: tuple[Obj, ...] = (),
) -> Obj:
    """The OCI runtime spec the kubelet and containerd's CRI make of ``container`` in
    ``pod`` (user, capabilities, root, mounts, namespaces), with ``volumes`` naming the
    host directory behind each volume."""
    sc = container["securityContext"]
    caps = sorted(f"CAP_{c}" for c in sc["capabilities"].get("add", []))
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = [*_BASE_MOUNTS]
    for mount in container.get("volumeMounts", []):
        options = ["rbind", "ro" if mount.get("readOnly") else "rw"]
        mounts.append(
            {"destination": mount["mountPath"], "type": "bind",
             "source": volumes[mount["name"]], "options": options}
        )  # fmt: skip
    mounts += list(extra_mounts)
    namespaces = [{"type": t} for t in ("mount", "uts", "ipc")]
    if not pod.get("hostPID"):
        namespaces.append({"type": "pid"})
    config = image_config["config"]
    command = container.get("command") or config["Entrypoint"]
    uid = sc.get("runAsUser", 0)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {
                "uid": uid,
                "gid": sc.get("runAsGroup", 0),
                "additionalGids": [pod["securityContext"]["fsGroup"]],
            },
            "args": [*command, *container.get("args", [])],
            "env": [*config["Env"], *(f"{k}={v}" for k, v in env.items())],
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": [],
                "ambient": [],
            },
            "noNewPrivileges": sc["allowPrivilegeEscalation"] is False,
            # what containerd without LimitNOFILE (the systemd default) gives containers
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": CONTAINERD_SOFT, "hard": CONTAINERD_HARD}
            ],
        },
        "root": {"path": rootfs, "readonly": sc["readOnlyRootFilesystem"]},
        "hostname": "ri-image-test",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroup,
            "namespaces": namespaces,
            "maskedPaths": _MASKED,
            "readonlyPaths": _READONLY,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }


def _image_config(archive: Path) -> tuple[Obj, Obj]:
    """(the index.json entry, the image config) read from the archive itself."""
    with tarfile.open(archive) as tar:

        def read(name: str) -> Any:
            member = tar.extractfile(name)
            assert member is not None, name
            return json.load(member)

        (entry,) = read("index.json")["manifests"]
        manifest = read("blobs/" + entry["digest"].replace(":", "/"))
        return entry, read("blobs/" + manifest["config"]["digest"].replace(":", "/"))


@dataclass
class Deployed:
    daemon: Containerd
    pod: ContainerdPod
    python_id: str
    archive: Path
    build_log: str
    image_entry: Obj
    image_config: Obj
    url: str
    ca: Path
    extractor_log: Path
    exporter_log: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(
            self.url + path,
            timeout=30,
            verify=ssl.create_default_context(cafile=str(self.ca)),
            headers={"Authorization": f"Bearer {READER_TOKEN}"},
        )


class _Agent:
    """Containers of the agent run with `ctr run --config` (the spec is the test's)."""

    def __init__(self, daemon: Containerd, base: Path, image: str) -> None:
        self.daemon = daemon
        self.base = base
        self.image = image
        self.ids: list[str] = []
        self.roots: list[Path] = []

    def rootfs(self, name: str) -> str:
        """A writable snapshot of the image, as containerd gives every container (the spec
        then mounts it read-only once the volumes' mount points exist)."""
        root = self.base / f"root-{name}"
        root.mkdir()
        self.roots.append(root)
        self.daemon.ctr("images", "mount", "--rw", self.image, str(root))
        return str(root)

    def run(self, name: str, spec: Obj, *, detach: bool = True) -> Path:
        container_id = f"ri-{name}-{uuid.uuid4().hex[:8]}"
        spec_file = self.base / f"{name}.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        log = self.base / f"{name}.log"
        self.ids.append(container_id)
        flags = ["--config", str(spec_file), "--runc-root", self.daemon.runc_root]
        flags += ["--log-uri", f"file://{log}"]
        if detach:
            flags.append("-d")
        proc = subprocess.run(
            ["ctr", "--address", self.daemon.address, "--namespace", "k8s.io", "run", *flags,
             container_id],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{name}: {proc.stderr}\n{log.read_text() if log.exists() else ''}"
        )
        return log

    def close(self) -> None:
        for container_id in reversed(self.ids):
            self.daemon.ctr("task", "rm", "-f", container_id, check=False)
            self.daemon.ctr("container", "rm", container_id, check=False)
        for root in self.roots:
            self.daemon.ctr("images", "unmount", "--rm", str(root), check=False)


def _wait_for_line(log: Path, marker: str) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if marker in line:
                return line
        time.sleep(0.2)
    pytest.fail(f"{marker!r} never appeared in {log}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    reason = _image_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="ri-img-", dir="/tmp"))
    archive = base / "image.tar"
    build = subprocess.run(
        [ROOT / "scripts" / "build-image.sh", archive],
        env={**os.environ, "IMAGE_SOURCE": SOURCE},
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    entry, config = _image_config(archive)
    daemon = Containerd.start(str(base / "c"))
    agent = _Agent(daemon, base, entry["annotations"]["io.containerd.image.name"])
    api: FakeApiServer | None = None
    loop: asyncio.AbstractEventLoop | None = None
    try:
        daemon.ctr("images", "import", str(archive))
        image_root = agent.rootfs("python")
        etc = Path(daemon.rootfs, "etc")
        (etc / "os-release").write_text('ID=riimage\nVERSION_ID="4.2"\n')
        pod = daemon.run_pod(
            "shop", "web", {"app": ["/bin/sleep", "100000"], "burner": burner_argv()}
        )
        python_id = new_container_id()
        daemon.run_container(
            python_id,
            ["/usr/bin/python3.11", "-c", "import time; time.sleep(100000)"],
            cgroup=f"{daemon.cgroup_prefix}/kubepods/besteffort/pod{uuid.uuid4()}/{python_id}",
            annotations={
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": "python",
                "io.kubernetes.cri.sandbox-namespace": "tools",
                "io.kubernetes.cri.sandbox-name": "py",
                "io.kubernetes.cri.sandbox-uid": str(uuid.uuid4()),
                "io.kubernetes.cri.image-name": "runtime-insights:0.2.0",
            },
            rootfs=image_root,
        )

        spec = _pod_spec()
        dirs = {n: base / "vol" / n for n in ("socket", "tmp", "crio", "spool", "om", "sa", "tls")}
        for path in dirs.values():
            path.mkdir(parents=True)
        ca = make_ca(base, "ca")
        serving = make_cert(base, ca, "127.0.0.1")
        for src, dst in ((serving.cert, "tls.crt"), (serving.key, "tls.key"), (ca.cert, "ca.crt")):
            shutil.copy(src, dirs["tls"] / dst)
        for path in dirs["tls"].iterdir():
            path.chmod(0o644)
        volumes = {
            "socket": str(dirs["socket"]),
            "tmp": str(dirs["tmp"]),
            "host-cgroup": "/sys/fs/cgroup",
            "host-containerd-tasks": daemon.task_root,
            "host-crio-containers": str(dirs["crio"]),
            "meter-spool": str(dirs["spool"]),
            "openmeter-token": str(dirs["om"]),
            "kube-api-access": str(dirs["sa"]),
            "tls": str(dirs["tls"]),
        }
        for path in (dirs["socket"], dirs["tmp"]):
            # an emptyDir as the kubelet makes it with fsGroup: the group's, setgid (so the
            # extractor's 0660 socket is the exporter's group's)
            os.chown(path, 0, spec["securityContext"]["fsGroup"])
            path.chmod(0o2777)
        group = f"{daemon.cgroup_prefix}/kubepods/burstable/pod{uuid.uuid4()}"

        # the init container, as the DaemonSet runs it (CHOWN only, no shell in the image),
        # hands the kubelet-made spool directory to the exporter's user
        agent.run(
            "meter-spool",
            oci_spec(
                spec,
                _container(spec, "meter-spool"),
                rootfs=agent.rootfs("meter-spool"),
                env={},
                cgroup=f"{group}/meter-spool",
                image_config=config,
                volumes=volumes,
            ),
            detach=False,
        )
        spool = dirs["spool"].stat()
        assert (spool.st_uid, spool.st_gid, spool.st_mode & 0o7777) == (65532, 65532, 0o700)

        extractor_log = agent.run(
            "extractor",
            oci_spec(
                spec,
                _container(spec, "extractor"),
                rootfs=agent.rootfs("extractor"),
                env={},
                cgroup=f"{group}/extractor",
                image_config=config,
                volumes=volumes,
            ),
        )
        socket = dirs["socket"] / "extractor.sock"
        deadline = time.monotonic() + WAIT
        while not socket.exists():
            assert time.monotonic() < deadline, extractor_log.read_text(errors="replace")
            time.sleep(0.2)

        api, loop, _ = _start_api(pod, {"app": "web", "run": "image"})
        kubeconfig = base / "vol" / "kubeconfig"
        api.write_kubeconfig(kubeconfig)
        kubeconfig.chmod(0o644)
        exporter = _container(spec, "exporter")
        env = {e["name"]: e["value"] for e in exporter["env"] if "value" in e}
        refs = {"spec.nodeName": NODE, "metadata.namespace": "runtime-insights"}
        for e in exporter["env"]:
            field_ref = e.get("valueFrom", {}).get("fieldRef")
            if field_ref:
                env[e["name"]] = refs[field_ref["fieldPath"]]
        env.update(
            RUNTIME_INSIGHTS_HOST="127.0.0.1",
            RUNTIME_INSIGHTS_PORT="0",
            RUNTIME_INSIGHTS_KUBECONFIG="/etc/runtime-insights/kubeconfig",
            RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS="1",
        )
        kube_mount = {"destination": "/etc/runtime-insights/kubeconfig", "type": "bind",
                      "source": str(kubeconfig), "options": ["rbind", "ro"]}  # fmt: skip
        exporter_log = agent.run(
            "exporter",
            oci_spec(spec, exporter, rootfs=agent.rootfs("exporter"), env=env,
                     cgroup=f"{group}/exporter", extra_mounts=(kube_mount,),
                     image_config=config, volumes=volumes),
        )  # fmt: skip
        line = _wait_for_line(exporter_log, "listening on https://127.0.0.1:")
        port = line.rsplit(":", 1)[1].split()[0].rstrip("/")
        yield Deployed(
            daemon=daemon,
            pod=pod,
            python_id=python_id,
            archive=archive,
            build_log=build.stdout + build.stderr,
            image_entry=entry,
            image_config=config,
            url=f"https://127.0.0.1:{port}",
            ca=ca.cert,
            extractor_log=extractor_log,
            exporter_log=exporter_log,
        )
    finally:
        agent.close()
        if api is not None and loop is not None:
            asyncio.run_coroutine_threadsafe(api.__aexit__(None, None, None), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
        daemon.close()
        shutil.rmtree(base, ignore_errors=True)


def test_the_image_is_labelled_and_runs_as_non_root(deployed: Deployed) -> None:
    version = deployed.image_config["config"]["Labels"]["org.opencontainers.image.version"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{version}"' in pyproject
    labels = deployed.image_config["config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == SOURCE
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    assert deployed.image_config["config"]["User"] == "65532:65532"
    name = deployed.image_entry["annotations"]["io.containerd.image.name"]
    assert name == f"docker.io/library/runtime-insights:{version}"
    assert "built in" in deployed.build_log and "MiB compressed" in deployed.build_log


def test_the_extractor_raises_its_open_files_limit_and_keeps_the_node_open(
    deployed: Deployed,
) -> None:
    """Started with a runtime's soft limit of 1024, the extractor asks for the manifest's
    --open-files, and says what of the node it keeps open."""
    args = _container(_pod_spec(), "extractor")["args"]
    (wanted,) = [int(a.split("=", 1)[1]) for a in args if a.startswith("--open-files=")]
    line = _wait_for_line(deployed.extractor_log, "first pass:")
    to = min(wanted, CONTAINERD_HARD)
    raised = f"open files limit raised from {CONTAINERD_SOFT} to {to} (hard {CONTAINERD_HARD})"
    assert raised in line
    # everything kept, or (another suite's node larger than the limit) what would keep it
    assert "keeping all" in line or "open files would keep them all" in line, line


def test_the_image_has_no_shell(deployed: Deployed) -> None:
    root = Path(deployed.daemon.base).parent / "root-python"
    for shell in ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash", "bin/busybox"):
        assert not (root / shell).exists(), shell
    assert (root / "usr/bin/python3.11").is_file()
    passwd = (root / "etc/passwd").read_text()
    assert "nonroot:x:65532:65532:" in passwd


def _ours(body: Obj, ids: set[str]) -> dict[str, Obj]:
    return {c["id"]: c for c in body["containers"] if c["id"] in ids}


def _host_fingerprints(daemon: Containerd, ids: set[str]) -> dict[str, Obj | None]:
    """What the extractor sees fully privileged, run here on the host (the test is root)."""
    paths = HostPaths(containerd_state=(daemon.task_root,))
    scanner = Scanner(paths)
    fingerprints = Fingerprints(paths.proc_root, pass_seconds=None)
    try:
        snapshot = fingerprints.settle(snapshot_taker(scanner, fingerprints)())
    finally:
        fingerprints.close()
        scanner.close()
    return {c.id: fingerprint_fields(c.fingerprint) for c in snapshot.containers if c.id in ids}


def test_the_exporter_answers_with_the_containers_and_their_fingerprints(
    deployed: Deployed,
) -> None:
    ids = {*deployed.pod.containers.values(), deployed.python_id}
    deadline = time.monotonic() + WAIT
    body: Obj = {}
    while time.monotonic() < deadline:
        resp = deployed.get("/v1/containers")
        if resp.status_code == 200:
            body = resp.json()
            ours = _ours(body, ids)
            pending = any((c["fingerprint"] or {}).get("pending") for c in ours.values())
            if len(ours) == 3 and body["metadataSource"] == "api" and not pending:
                break
        time.sleep(0.5)
    else:
        pytest.fail(
            f"/v1/containers never listed all three: {body}\n"
            + deployed.exporter_log.read_text(errors="replace")[-3000:]
            + deployed.extractor_log.read_text(errors="replace")[-3000:]
        )
    names = {c["id"]: (c["namespace"], c["pod"], c["container"]) for c in ours.values()}
    for name, container_id in deployed.pod.containers.items():
        assert names[container_id] == ("shop", "web", name)
    assert names[deployed.python_id] == ("tools", "py", "python")
    assert ours[deployed.pod.containers["burner"]]["cpu"]["totalSeconds"] > 0
    expected = _host_fingerprints(deployed.daemon, ids)
    for container_id, doc in ours.items():
        assert doc["fingerprint"] == expected[container_id], names[container_id]
        assert "errors" not in doc or not doc["errors"], doc["errors"]
    app = ours[deployed.pod.containers["app"]]["fingerprint"]
    assert (app["os"], app["osVersion"]) == ("riimage", "4.2")
    python = ours[deployed.python_id]["fingerprint"]
    assert (python["os"], python["osVersion"], python["kind"]) == ("debian", "12", "Python")
    assert python["kindVersion"].startswith("Python 3.11.")
